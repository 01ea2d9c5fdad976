"""Privacy by default: pseudonymous user ids, and forgetting a user on request."""

from streamtune.privacy.forget import ForgetRequests, ForgetWatch
from streamtune.privacy.pseudonyms import Pseudonymiser, user_tag, user_tags

__all__ = ["ForgetRequests", "ForgetWatch", "Pseudonymiser", "user_tag", "user_tags"]
