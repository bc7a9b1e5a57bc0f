// Try-it: exchange the app's credentials for a token, then call one API through the gateway.
(function () {
  const form = document.getElementById("try-it");
  if (!form) return;
  const out = document.getElementById("try-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const clientId = document.getElementById("client-id").textContent.trim();
    const secret = document.getElementById("try-secret").value;
    const option = document.getElementById("try-path").selectedOptions[0];
    out.textContent = "Requesting a token…";
    const body = new URLSearchParams({grant_type: "client_credentials", client_id: clientId,
                                      client_secret: secret, scope: option.dataset.scope});
    const tokenResponse = await fetch(form.dataset.tokenUrl, {method: "POST", body});
    const token = await tokenResponse.json();
    if (!tokenResponse.ok) { out.textContent = "Token refused: " + JSON.stringify(token, null, 2); return; }
    const response = await fetch(option.value, {headers: {Authorization: "Bearer " + token.access_token}});
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
    out.textContent = "HTTP " + response.status + "\n" + shown.slice(0, 4000);
    out.dataset.status = String(response.status);
  });
})();
