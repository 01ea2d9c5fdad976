"""Configuration mistakes as short messages that name the setting and never echo its value.

pydantic's own rendering of a :class:`~pydantic.ValidationError` repeats the rejected input (a
short admin token, a SASL password) and spans a dozen lines; these helpers keep one line per
mistake, give the ``STREAMTUNE_*`` name the user actually typed, and turn a misspelt variable or
config-file key, which pydantic-settings would silently ignore, into an error with the nearest
valid name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

ENV_PREFIX = "STREAMTUNE_"


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``admin_token`` -> ``STREAMTUNE_ADMIN_TOKEN``."""
    return f"{ENV_PREFIX}{field.upper()}"


def validation_messages(error: ValidationError) -> list[str]:
    """One line per problem, naming the variable; the rejected value is never included."""
    messages = []
    for problem in error.errors(include_input=False, include_url=False, include_context=False):
        message = problem["msg"].removeprefix("Value error, ")
        location = problem["loc"]
        if location and isinstance(location[0], str):
            messages.append(f"{env_name(location[0])}: {message}")
        else:
            messages.append(message)  # a check across settings: its message names them
    return messages


def unknown_names(names: Iterable[str], model: type[BaseModel], where: str) -> list[str]:
    """A message for each of ``names`` that looks like a setting but is none, with a suggestion.

    >>> from pydantic import BaseModel
    >>> class Demo(BaseModel):
    ...     batch_size: int = 1
    >>> unknown_names(["STREAMTUNE_BATCH_SIZ", "STREAMTUNE_BATCH_SIZE", "HOME"], Demo, "the environment")
    ['unknown setting STREAMTUNE_BATCH_SIZ in the environment; did you mean STREAMTUNE_BATCH_SIZE?']
    """
    valid = [env_name(field) for field in model.model_fields]
    messages = []
    for name in names:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in valid:
            continue
        close = difflib.get_close_matches(upper, valid, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else " (see the README's configuration table)"
        messages.append(f"unknown setting {name} in {where}{hint}")
    return messages


def config_file_keys(path: Path) -> list[str]:
    """The keys an env file defines (``KEY=value`` lines; comments and blanks skipped)."""
    from dotenv import dotenv_values  # a dependency of pydantic-settings

    return list(dotenv_values(path).keys())


def unknown_config_keys(path: Path, model: type[BaseModel]) -> list[str]:
    """Keys of an env file that are not ``STREAMTUNE_*`` settings (with the nearest valid name)."""
    keys = config_file_keys(path)
    foreign = [key for key in keys if not key.upper().startswith(ENV_PREFIX)]
    messages = unknown_names(keys, model, f"config file {path}")
    for key in foreign:
        close = difflib.get_close_matches(env_name(key), [env_name(f) for f in model.model_fields], n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f" (settings are named {ENV_PREFIX}*)"
        messages.append(f"unknown setting {key} in config file {path}{hint}")
    return messages


def unknown_environment(environ: Mapping[str, str], model: type[BaseModel]) -> list[str]:
    """``STREAMTUNE_*`` variables of the environment that name no setting."""
    return unknown_names(sorted(environ), model, "the environment")
