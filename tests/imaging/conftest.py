"""Fixtures of the imaging tests: the photo pipeline environment (`tests.imaging.pipeline_env`), moto's S3."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis

from imaging.certs import DevCertificates, create_dev_certificates
from imaging.provenance import ProvenanceSigner
from imaging.providers.replicate import ReplicateImageProvider
from imaging.s3 import S3Connection
from imaging.service import PhotoService
from imaging.storage import LocalPhotoStore
from tests.fakes.replicate import FakeReplicate
from tests.fakes.s3 import MotoS3, unique_bucket
from tests.imaging.pipeline_env import EDIT_MODEL, REFERENCE_MODEL, TOKEN, Env, Hooks


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> tuple[DevCertificates, ProvenanceSigner]:
    """Development C2PA certificates and a signer built from them."""
    certs = create_dev_certificates(tmp_path_factory.mktemp("certs"))
    return certs, ProvenanceSigner.from_files(certs.chain, certs.signer_key)


@pytest.fixture
async def env(
    db: str, redis: ArqRedis, tmp_path: Path, credentials: tuple[DevCertificates, ProvenanceSigner]
) -> AsyncIterator[Env]:
    """A fake Replicate, the real provider polling it fast, a local store, an HTTP client, recorded hooks."""
    certs, signer = credentials
    async with FakeReplicate(token=TOKEN) as fake, httpx.AsyncClient() as http:
        assert isinstance(fake, FakeReplicate)
        provider = ReplicateImageProvider(
            TOKEN,
            base_url=fake.url,
            reference_model=REFERENCE_MODEL,
            edit_model=EDIT_MODEL,
            poll_interval=0.01,
            timeout=5,
        )
        try:
            yield Env(
                fake=fake,
                provider=provider,
                store=LocalPhotoStore(tmp_path / "photos"),
                signer=signer,
                certs=certs,
                http=http,
                redis=redis,
                hooks=Hooks(),
                service=PhotoService(redis),
            )
        finally:
            await provider.aclose()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    """moto's S3 server for this module."""
    with MotoS3() as server:
        yield server


@pytest.fixture
async def bucket(moto: MotoS3) -> str:
    """A fresh bucket on the server."""
    name = unique_bucket()
    await moto.create_bucket(name)
    return name


@pytest.fixture
async def connection(moto: MotoS3, bucket: str) -> AsyncIterator[S3Connection]:
    """An open S3 connection to the bucket."""
    async with S3Connection(moto.config(bucket)) as opened:
        yield opened
