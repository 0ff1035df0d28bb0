"""Stand-in credentials for ``ziri-images dev``: what each provider is given when it is sent to the local stub.

A provider without a credential of its own goes to the stub with a dummy one: OpenAI, the
Gemini API, Stability AI, Recraft and Black Forest Labs a key the stub takes whatever it is; Vertex AI a service
account key made at start-up (a fresh RSA key, never written to disk, its ``token_uri`` the
stub's ``/token``), so the gateway signs and exchanges a real assertion as it would with Google,
and a dummy project.
"""

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

STUB_API_KEY = "sk-local-stub-not-a-real-key"
STUB_GEMINI_KEY = "local-stub-not-a-real-gemini-key"
STUB_PROJECT = "ziri-local-stub"
# provider -> the variables that give it a credential of its own
CREDENTIAL_VARIABLES = {
    "openai": ("OPENAI_API_KEY",),
    "google": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "vertex": ("VERTEX_CREDENTIALS_JSON", "GOOGLE_APPLICATION_CREDENTIALS"),
    "stability": ("STABILITY_API_KEY",),
    "recraft": ("RECRAFT_API_KEY",),
    "bfl": ("BFL_API_KEY",),
}


def service_account_json(token_uri):
    """Return a service account key file's JSON with a new private key, exchanged at ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    return json.dumps({"type": "service_account", "project_id": STUB_PROJECT, "private_key_id": "local-stub",
                       "private_key": pem, "client_email": f"local-stub@{STUB_PROJECT}.iam.gserviceaccount.com",
                       "client_id": "0", "token_uri": token_uri})


def stub_environment(provider, stub_url):
    """Return the variables that send ``provider`` to the stub at ``stub_url`` (and where it answers)."""
    if provider == "openai":
        return {"OPENAI_BASE_URL": f"{stub_url}/v1", "OPENAI_API_KEY": STUB_API_KEY}
    if provider == "google":
        return {"GEMINI_BASE_URL": f"{stub_url}/v1beta", "GEMINI_API_KEY": STUB_GEMINI_KEY}
    if provider == "stability":
        return {"STABILITY_BASE_URL": stub_url, "STABILITY_API_KEY": STUB_API_KEY}
    if provider == "bfl":  # jobs submitted, polled and fetched as on BFL's API
        return {"BFL_BASE_URL": f"{stub_url}/bfl/v1", "BFL_API_KEY": STUB_API_KEY}
    if provider == "recraft":
        return {"RECRAFT_BASE_URL": f"{stub_url}/v1", "RECRAFT_API_KEY": STUB_API_KEY}
    return {"VERTEX_BASE_URL": f"{stub_url}/v1", "VERTEX_CREDENTIALS_JSON": service_account_json(f"{stub_url}/token"),
            "VERTEX_PROJECT": STUB_PROJECT, "VERTEX_LOCATION": "global"}


def without_credentials(env):
    """Return the providers ``env`` gives no credential of their own, in CREDENTIAL_VARIABLES' order."""
    return [name for name, variables in CREDENTIAL_VARIABLES.items() if not any(env.get(each) for each in variables)]
