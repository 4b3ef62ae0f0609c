"""Self-check of the HF reference helpers: build a tiny model, print token ids and emission rates.

Run: python tests/reference/check_hf.py [--english]
Shows, per right context r and language: offline (generate) token ids and tokens per encoder frame, and
whether HF streaming (documented recipe) reproduces offline on the frames it covers.
"""

import argparse
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
warnings.filterwarnings("ignore")

from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

from tests.reference import hf  # noqa: E402


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--english", action="store_true", help="prompt-less English sibling model")
    args = ap.parse_args()
    with_prompt = not args.english
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        hf.build_hf_model(d, with_prompt=with_prompt)
        t_build = time.perf_counter() - t0
        print(f"built in {t_build:.1f}s: {sorted(os.listdir(d))}")
        model, processor = hf.load_hf(d)
        print("supported r:", processor.supported_num_lookahead_tokens, "default:", processor.default_num_lookahead_tokens,
              "blank:", model.config.blank_token_id)
        clips = hf.test_clips()
        langs = ["en-US", "de-DE", "auto"] if with_prompt else [None]
        t0 = time.perf_counter()
        total_tok = total_frames = 0
        for r in processor.supported_num_lookahead_tokens:
            for lang in langs:
                for name in ("normal", "long", "short", "odd_length", "leading_silence"):
                    off = hf.hf_offline(d, clips[name], lang, r)
                    T = off["encoder_output"].shape[0]
                    ids = off["token_ids"]
                    total_tok += len(ids)
                    total_frames += T
                    try:
                        st = hf.hf_streaming(d, clips[name], lang, r)
                        n = min(T, st["encoder_output"].shape[0])
                        diff = (off["encoder_output"][:n] - st["encoder_output"][:n]).abs().max().item()
                        same = st["token_ids"] == ids
                        prefix = ids[: len(st["token_ids"])] == st["token_ids"]
                        sinfo = (f"stream T={st['encoder_output'].shape[0]} enc_maxdiff={diff:.1e} "
                                 f"ids {'==' if same else ('prefix' if prefix else '!=')} offline")
                    except NotImplementedError:
                        sinfo = "stream: r=0 recipe crashes (NotImplementedError)"
                    except ValueError as e:
                        sinfo = f"stream: ValueError ({str(e)[:60]}...)"
                    print(f"r={r:2d} {str(lang):6s} {name:15s} T={T:3d} tokens={len(ids):3d} "
                          f"rate={len(ids) / T:.2f} distinct={len(set(ids)):2d} ids={ids[:12]} | {sinfo}")
        t_ref = time.perf_counter() - t0
        print(f"overall rate {total_tok / total_frames:.2f} tokens/frame; references computed in {t_ref:.1f}s "
              f"(build {t_build:.1f}s)")


if __name__ == "__main__":
    main()
