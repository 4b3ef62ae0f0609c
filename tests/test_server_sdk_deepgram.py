"""The official deepgram-sdk live client against /v1/listen: its finals equal the offline transcript."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread

deepgram = pytest.importorskip("deepgram")


def test_deepgram_sdk_live(asr, clips):
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment

    audio = np.concatenate([clips["normal"], clips["long"]])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    expected = asr.transcribe(pcm.astype(np.float32) / 32768, 16000, language="en-US", chunk_ms=320)
    assert expected.text
    with serve_in_thread(create_app(asr, ServerConfig(api_keys=("dg-key",), endpoint_blank_ms=None))) as http:
        ws = http.replace("http", "ws")
        env = DeepgramClientEnvironment(base=http, production=ws, agent=ws, agent_rest=http)

        async def run():
            client = AsyncDeepgramClient(api_key="dg-key", environment=env)
            finals, meta = [], []
            async with client.listen.v1.connect(model="nova-3", language="en-US", encoding="linear16",
                                                sample_rate=16000, interim_results="true",
                                                request_options={"additional_query_parameters": {"chunk_ms": 320}}
                                                ) as conn:
                async def receive():
                    async for msg in conn:
                        if getattr(msg, "type", None) == "Results" and msg.is_final:
                            finals.append(msg.channel.alternatives[0].transcript)
                        elif getattr(msg, "type", None) == "Metadata":
                            meta.append(msg)
                task = asyncio.create_task(receive())
                data = pcm.tobytes()
                for pos in range(0, len(data), 6400):
                    await conn.send_media(data[pos:pos + 6400])
                await conn.send_keep_alive()
                await conn.send_close_stream()
                await asyncio.wait_for(task, 60)
            return finals, meta

        finals, meta = asyncio.run(run())
    assert " ".join(f for f in finals if f) == expected.text
    assert len(meta) == 1 and abs(meta[0].duration - len(audio) / 16000) < 1e-6
