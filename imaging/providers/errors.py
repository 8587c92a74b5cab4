"""Errors of image providers, split by what the caller should do about them.

- `TransientProviderError`: try again later (timeouts, 5xx, 429, network, a failed or cancelled job).
- `ContentPolicyError`: the model refused the content; retrying the same request will not help.
- `PermanentProviderError`: bad configuration or input (401/403/404/422, undecodable reference...).
"""

from __future__ import annotations

from core.errors import AvaError


class ProviderError(AvaError):
    """An image provider could not produce an image."""

    http_status = 502
    public_message = "The image service could not create the photo."
    #: Whether the same request may succeed when tried again later.
    retryable: bool = False

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class TransientProviderError(ProviderError):
    """A temporary failure: timeout, 5xx, rate limit, network trouble or a failed job. Retryable."""

    http_status = 503
    public_message = "The image service is busy. Please try again in a moment."
    retryable = True

    def __init__(self, message: str, *, job_id: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, job_id=job_id)
        #: Seconds the provider asked us to wait (HTTP 429 `Retry-After`), when it said so.
        self.retry_after = retry_after


class ContentPolicyError(ProviderError):
    """The model refused the prompt or the result (safety filter). Not retryable as is."""

    http_status = 422
    public_message = "The image model refused this request. Please try a different scene."


class PermanentProviderError(ProviderError):
    """Bad configuration or input (authentication, unknown model, invalid input). Not retryable."""
