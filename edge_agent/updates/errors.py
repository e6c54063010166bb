"""One exception per way an update can be refused or fail.

Split by who is at fault (as python-tuf does): the *registry* published something we must not
install (:class:`ManifestRejected` and its subclasses), the *download* went wrong
(:class:`DownloadError`), the *model* itself does not pass preflight or trial
(:class:`ModelRejected`), or the device's own *store* is in a state we refuse to write into
(:class:`StoreError`). Every class has a short ``reason`` code (published on ``<p>/update``) and
its message says what failed, where, and what to do.
"""

from __future__ import annotations

from ..errors import EdgeAgentError, ExitCode


class UpdateError(EdgeAgentError):
    """Base of every update failure."""

    exit_code = ExitCode.UPDATE
    reason = "update_failed"


# --- the registry published something we refuse --------------------------------------------
class ManifestRejected(UpdateError):
    """The manifest (or its signature) is not acceptable."""

    exit_code = ExitCode.MANIFEST_REJECTED
    reason = "manifest_rejected"


class ManifestTooLarge(ManifestRejected):
    reason = "manifest_too_large"


class UnsignedManifest(ManifestRejected):
    reason = "unsigned"


class UnknownKey(ManifestRejected):
    reason = "unknown_key"


class BadSignature(ManifestRejected):
    reason = "bad_signature"


class ManifestNotJSON(ManifestRejected):
    reason = "not_json"


class ManifestInvalid(ManifestRejected):
    """Missing or ill-typed fields, unknown schema."""

    reason = "invalid_manifest"


class WrongModelName(ManifestRejected):
    reason = "wrong_name"


class DowngradeRefused(ManifestRejected):
    reason = "downgrade"


class ManifestExpired(ManifestRejected):
    reason = "expired"


class BadFileName(ManifestRejected):
    reason = "bad_file_name"


class Incompatible(ManifestRejected):
    """The model needs another runtime or input than this device has."""

    reason = "incompatible"


# --- the download went wrong ---------------------------------------------------------------
class DownloadError(UpdateError):
    exit_code = ExitCode.DOWNLOAD
    reason = "download_failed"


class FileTooLarge(DownloadError):
    reason = "file_too_large"


class WrongSize(DownloadError):
    reason = "wrong_size"


class WrongHash(DownloadError):
    reason = "wrong_sha256"


class ReleaseTooLarge(DownloadError):
    """The files of one release add up to more than the staging limit."""

    reason = "release_too_large"


class DownloadTimeout(DownloadError):
    """A download outlived its overall deadline (a registry that trickles or stalls)."""

    reason = "download_timeout"


class DownloadCancelled(DownloadError):
    """Ended from outside: the ``cancel`` or ``rollback`` command, or the agent's shutdown."""

    reason = "cancelled"

    def __init__(self, message: str, why: str = "cancel") -> None:
        super().__init__(message)
        self.why = why


# --- the model does not pass -----------------------------------------------------------------
class ModelRejected(UpdateError):
    exit_code = ExitCode.MODEL_REJECTED
    reason = "model_rejected"


class NotTFLite(ModelRejected):
    reason = "not_tflite"


class InputShapeMismatch(ModelRejected):
    reason = "input_shape"


class PreflightCrashed(ModelRejected):
    reason = "preflight_crashed"


class PreflightTimeout(ModelRejected):
    reason = "preflight_timeout"


class PreflightLoadFailed(ModelRejected):
    reason = "preflight_load_failed"


class GoldenMismatch(ModelRejected):
    reason = "golden_mismatch"


class TooSlow(ModelRejected):
    reason = "too_slow"


class TrialFailed(ModelRejected):
    reason = "trial_failed"


class ShadowDisagreement(ModelRejected):
    """Beside the active model on live frames, the candidate's results agree less than the
    manifest's ``health.shadow.min_agreement`` (or are of another kind)."""

    reason = "shadow_disagreement"


class ShadowIncomplete(ModelRejected):
    """Too few frames compared within ``health.shadow.max_seconds`` (no camera frames, or the
    CPU budget left too little), or results with nothing to compare (raw outputs)."""

    reason = "shadow_incomplete"


class ShadowFailed(ModelRejected):
    """The candidate raised on live frames during the shadow evaluation."""

    reason = "shadow_failed"


# --- the device's store ----------------------------------------------------------------------
class StoreError(UpdateError):
    exit_code = ExitCode.STORE
    reason = "store_error"


class SymlinkInStore(StoreError):
    reason = "symlink_in_store"


class OutsideStore(StoreError):
    """A delete or rename whose target does not lie strictly inside its own store folder."""

    reason = "unsafe_path"


class CorruptModel(StoreError):
    """A stored model's bytes no longer match the sha256 recorded when it was installed."""

    reason = "corrupt_model"


class VersionNotFound(StoreError):
    reason = "version_not_found"


class NoPreviousVersion(StoreError):
    reason = "no_previous"


class DiskFull(StoreError):
    """The device's disk (state dir) has no room for the download or the install; the
    update ends ``failed`` (not ``rejected``: the release is not at fault)."""

    reason = "disk_full"


# --- the central side: registry publish -------------------------------------------------------
class PublishRefused(UpdateError):
    """``registry publish`` refuses before writing anything."""

    exit_code = ExitCode.PUBLISH_REFUSED
    reason = "publish_refused"


class UnsafeReleaseName(PublishRefused):
    reason = "unsafe_name"


class ReleaseExists(PublishRefused):
    reason = "release_exists"


class ReportMismatch(PublishRefused):
    """``--report`` is not a ``models compare`` report about the model being published."""

    reason = "report_mismatch"


class UpdateBusy(UpdateError):
    """Another update is running on this device."""

    exit_code = ExitCode.UPDATE_BUSY
    reason = "busy"


class StoreInUse(UpdateBusy):
    """``models activate | rollback`` while the agent runs on the same store: changing the store
    behind it is refused (it would run the old model and report the new one)."""

    reason = "agent_running"
