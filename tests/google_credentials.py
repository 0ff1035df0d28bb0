"""A Google service account key made for the tests: a fresh RSA key, its token endpoint wherever the test says.

The same private key serves the whole run (making one takes a few tens of milliseconds);
``service_account_json(token_uri)`` wraps it in a key file's JSON, as Google's console writes it.
"""

import functools
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_EMAIL = "ziri-test@ziri-test-project.iam.gserviceaccount.com"


@functools.lru_cache(maxsize=1)
def private_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def service_account_info(token_uri="https://oauth2.googleapis.com/token"):
    return {"type": "service_account", "project_id": "ziri-test-project", "private_key_id": "0123456789abcdef",
            "private_key": private_key_pem(), "client_email": CLIENT_EMAIL, "client_id": "1",
            "token_uri": token_uri}


def service_account_json(token_uri="https://oauth2.googleapis.com/token"):
    return json.dumps(service_account_info(token_uri))
