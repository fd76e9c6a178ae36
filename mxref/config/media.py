"""Media repository options: where uploads are stored and how large they may be.

Client-Server API, "Content repository"
(https://spec.matrix.org/v1.19/client-server-api/#content-repository): the
server advertises its upload limit as ``m.upload.size`` in
``GET /_matrix/client/v1/media/config`` and refuses larger uploads with
``413 M_TOO_LARGE``.
"""

import attrs

from mxref.config.reader import ConfigReader


@attrs.frozen
class MediaConfig:
    """Media settings.

    :ivar media_store_path: the directory uploaded and cached remote files live in.
    :ivar max_upload_size: the largest upload accepted, in bytes (Synapse's default: 50M).
    """

    media_store_path: str
    max_upload_size: int = 50 * 1024 * 1024

    @classmethod
    def read(cls, reader: ConfigReader) -> "MediaConfig":
        """Read ``media_store_path`` (default ``media_store`` in the config directory) and ``max_upload_size``."""
        return cls(
            media_store_path=reader.path("media_store_path", "media_store"),
            max_upload_size=reader.size("max_upload_size", "50M"),
        )
