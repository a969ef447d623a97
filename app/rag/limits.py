"""What an organization may keep in its knowledge bases, and what parsing one upload may cost."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.rag.parsing import ArchiveLimits, ParseLimits
from app.settings import Knowledge

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StorageQuota:
    """Per organization: documents kept (failed ones included) and bytes of stored files."""

    max_documents: int = 500
    max_bytes: int = 1024 * MB


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """The upload limits `settings.knowledge` sets, in the shapes the code checks them in."""

    quota: StorageQuota = field(default_factory=StorageQuota)
    parse: ParseLimits = field(default_factory=ParseLimits)

    @classmethod
    def from_settings(cls, knowledge: Knowledge) -> UploadPolicy:
        """MAX_DOCUMENTS_PER_ORG, MAX_STORAGE_MB_PER_ORG, PARSE_*, MAX_UNPACKED_MB, …"""
        archive = ArchiveLimits(
            max_unpacked_bytes=knowledge.max_unpacked_mb * MB,
            max_ratio=float(knowledge.max_compression_ratio),
            max_entries=knowledge.max_archive_entries,
        )
        return cls(
            quota=StorageQuota(
                max_documents=knowledge.max_documents_per_org,
                max_bytes=knowledge.max_storage_mb_per_org * MB,
            ),
            parse=ParseLimits(
                timeout_s=knowledge.parse_timeout_s,
                memory_mb=knowledge.parse_memory_mb,
                archive=archive,
                # The text a parse returns is bounded like what a DOCX may unpack to.
                max_output_bytes=archive.max_unpacked_bytes,
            ),
        )
