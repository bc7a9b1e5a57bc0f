"""Mail the portal sends (email confirmation): through SMTP when configured, else into the server log.

`PSCONNECT_SMTP_URL` (`smtp://[user:password@]host[:port]` with STARTTLS when the server
offers it, or `smtps://…` for implicit TLS) and `PSCONNECT_SMTP_FROM` configure delivery;
smtplib blocks, so a send runs in a worker thread, off the event loop. Without SMTP
(embedded mode, a laptop) the message is written to the server log as one structured
line — event `portal_email` with `to`, `purpose` and `link` — which the operator (or a
test) reads. A failed delivery is logged and does not fail the page: the person can ask
for the link again.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

__all__ = ["Mailer"]

log = logging.getLogger("psconnect.portal.mail")


class Mailer:
    def __init__(self, smtp_url: str | None, sender: str = "psconnect@localhost", *, timeout: float = 10.0) -> None:
        self.smtp_url = smtp_url or None
        self.sender = sender
        self.timeout = timeout

    async def send(self, to: str, subject: str, text: str, *, purpose: str, link: str) -> None:
        if self.smtp_url is None:
            log.warning("portal email not sent (no PSCONNECT_SMTP_URL); its link is here",
                        extra={"fields": {"event": "portal_email", "purpose": purpose, "to": to, "link": link}})
            return
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message.set_content(text)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("portal email delivery failed", extra={"fields": {
                "event": "portal_email_failed", "purpose": purpose, "to": to, "error": repr(exc)}})
        else:
            log.info("portal email sent", extra={"fields": {"event": "portal_email_sent", "purpose": purpose,
                                                            "to": to}})

    def _deliver(self, message: EmailMessage) -> None:
        url = urlsplit(self.smtp_url or "")
        host = url.hostname or "localhost"
        smtp: smtplib.SMTP
        if url.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, url.port or 465, timeout=self.timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, url.port or 25, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if url.scheme != "smtps" and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)
