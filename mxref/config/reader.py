"""Reading typed values out of the parsed ``homeserver.yaml``, with errors that name the key.

Every config section is built by asking a :class:`ConfigReader` for its
values. The reader knows the dotted path of the mapping it reads (for
example ``listeners[1]``), so a bad value is reported as
``listeners[1].port: must be an integer between 0 and 65535``, and it
remembers which keys were read so that leftover keys can be reported as
unknown (a warning, never a crash).

Value syntaxes follow Synapse's configuration so that an existing Synapse
``homeserver.yaml`` carries over: sizes such as ``"50M"`` and durations such
as ``"1d"``.
"""

import os
import re

from twisted.logger import Logger


class ConfigError(Exception):
    """A configuration value is missing or invalid.

    :param key: the dotted path of the offending key, e.g. ``listeners[1].port``.
    :param msg: what is wrong with it, in words.
    """

    def __init__(self, key: str, msg: str):
        super().__init__(f"{key}: {msg}")
        self.key = key
        self.msg = msg


#: Marker for "this key has no default: it must be present".
REQUIRED = object()

_SIZE_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_DURATION_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60 * 1000,
    "h": 60 * 60 * 1000,
    "d": 24 * 60 * 60 * 1000,
    "w": 7 * 24 * 60 * 60 * 1000,
    "y": 365 * 24 * 60 * 60 * 1000,
}


def parse_size(key: str, value) -> int:
    """Turn a size (an integer number of bytes, or a string like ``"50M"``) into bytes.

    The suffixes ``K``, ``M``, ``G`` and ``T`` are powers of 1024, as in Synapse.

    :param key: the dotted key path, for the error message.
    :raises ConfigError: if the value is not a size.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)\s*", value, re.IGNORECASE)
        if match:
            return int(match.group(1)) * _SIZE_UNITS.get(match.group(2).upper(), 1)
    raise ConfigError(key, f'must be a size in bytes such as 1048576 or "50M", not {value!r}')


def parse_duration_ms(key: str, value) -> int:
    """Turn a duration (an integer number of milliseconds, or ``"1d"``, ``"5m"``, ...) into milliseconds.

    The suffixes are ``ms``, ``s``, ``m``, ``h``, ``d``, ``w`` and ``y``, as in Synapse.

    :param key: the dotted key path, for the error message.
    :raises ConfigError: if the value is not a duration.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d|w|y)?\s*", value)
        if match:
            return int(match.group(1)) * _DURATION_UNITS_MS[match.group(2) or "ms"]
    raise ConfigError(
        key, f'must be a duration such as 60000 (milliseconds) or "1h", not {value!r}'
    )


class ConfigReader:
    """Reads the keys of one YAML mapping, checking types and remembering what was read.

    :param data: the mapping (``None`` is read as an empty mapping).
    :param path: the dotted path of this mapping in the document (``""`` for the top level).
    :param config_dir: the directory that relative paths are resolved against.
    :param warnings: the shared list that unknown-key warnings are appended to.
    """

    log = Logger()

    def __init__(self, data, path: str, config_dir: str, warnings: list):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path or "(top level)", "must be a mapping of keys to values")
        self.data = data
        self.location = path
        self.config_dir = config_dir
        self.warnings = warnings
        self._read = set()

    def key_path(self, key: str) -> str:
        """The dotted path of ``key`` inside this mapping, e.g. ``database.args.cp_min``."""
        return f"{self.location}.{key}" if self.location else key

    def has(self, key: str) -> bool:
        """Whether ``key`` is present with a non-null value."""
        return self.data.get(key) is not None

    def raw(self, key: str, default=None):
        """The value of ``key`` as YAML gave it (``default`` when absent or null)."""
        self._read.add(key)
        value = self.data.get(key)
        if value is None:
            if default is REQUIRED:
                raise ConfigError(self.key_path(key), "is required")
            return default
        return value

    def string(self, key: str, default=REQUIRED):
        """A string value (``default`` when absent; may be ``None`` for optional keys)."""
        value = self.raw(key, default)
        if value is default:
            return value
        if not isinstance(value, str):
            raise ConfigError(self.key_path(key), f"must be a string, not {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """A ``true``/``false`` value."""
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key_path(key), f"must be true or false, not {value!r}")
        return value

    def integer(self, key: str, default=REQUIRED, minimum=None, maximum=None) -> int:
        """An integer value, optionally bounded (inclusive)."""
        value = self.raw(key, default)
        if value is default and default is None:
            return value
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and minimum is not None and value < minimum:
            ok = False
        if ok and maximum is not None and value > maximum:
            ok = False
        if not ok:
            if minimum is not None and maximum is not None:
                bound = f" between {minimum} and {maximum}"
            elif minimum is not None:
                bound = f" of at least {minimum}"
            else:
                bound = ""
            raise ConfigError(self.key_path(key), f"must be an integer{bound}, not {value!r}")
        return value

    def number(self, key: str, default=REQUIRED, minimum: float = 0) -> float:
        """A non-negative (or at least ``minimum``) integer or decimal number, returned as float."""
        value = self.raw(key, default)
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or value < minimum
            or value != value
        ):
            raise ConfigError(
                self.key_path(key), f"must be a number of at least {minimum}, not {value!r}"
            )
        return float(value)

    def size(self, key: str, default) -> int:
        """A size in bytes (``1048576`` or ``"1M"``)."""
        return parse_size(self.key_path(key), self.raw(key, default))

    def duration_ms(self, key: str, default) -> int:
        """A duration in milliseconds (``60000`` or ``"1m"``)."""
        return parse_duration_ms(self.key_path(key), self.raw(key, default))

    def path(self, key: str, default=REQUIRED):
        """A filesystem path, made absolute against the config directory (``None`` stays ``None``)."""
        value = self.string(key, default)
        if value is None:
            return None
        return self.resolve_path(value)

    def resolve_path(self, value: str) -> str:
        """``value`` made absolute: ``~`` is expanded and relative paths are taken from the config directory."""
        return os.path.normpath(os.path.join(self.config_dir, os.path.expanduser(value)))

    def string_list(self, key: str, default=()):
        """A list of strings, returned as a tuple (``default`` when absent; may be ``None``)."""
        value = self.raw(key, default)
        if value is default:
            return None if value is None else tuple(value)
        if not isinstance(value, list):
            raise ConfigError(self.key_path(key), f"must be a list of strings, not {value!r}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(
                    f"{self.key_path(key)}[{index}]", f"must be a string, not {item!r}"
                )
        return tuple(value)

    def section(self, key: str) -> "ConfigReader":
        """A reader for the mapping under ``key`` (an empty mapping when absent)."""
        return ConfigReader(self.raw(key, {}), self.key_path(key), self.config_dir, self.warnings)

    def sections(self, key: str, default=()) -> list:
        """Readers for each mapping of the list under ``key``."""
        value = self.raw(key, None)
        if value is None:
            value = list(default)
        if not isinstance(value, list):
            raise ConfigError(self.key_path(key), f"must be a list, not {value!r}")
        return [
            ConfigReader(item, f"{self.key_path(key)}[{index}]", self.config_dir, self.warnings)
            for index, item in enumerate(value)
        ]

    def warn(self, key: str, message: str) -> None:
        """Record (and log) a warning about ``key``."""
        text = f"{self.key_path(key)}: {message}"
        self.warnings.append(text)
        self.log.warn("homeserver.yaml: {problem}", problem=text)

    def warn_about_unread(self, ignored_synapse_keys=()) -> None:
        """Warn about every key of this mapping that no section read.

        :param ignored_synapse_keys: keys that Synapse understands but mxref has
            no use for; they get a gentler warning than plain unknown keys.
        """
        for key in self.data:
            if key in self._read:
                continue
            if key in ignored_synapse_keys:
                self.warn(key, "is a Synapse option that mxref does not use; ignored")
            else:
                self.warn(key, "is not an mxref option; ignored")
