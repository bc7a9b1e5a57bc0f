"""Project provisioning: won opportunity -> validated customer -> ERP project -> PSA project."""
