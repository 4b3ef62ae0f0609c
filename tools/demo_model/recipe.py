"""Reproduce the shipped demo model (onepass/assets/demo, avg35: the mean of avg34's and run35's weights,
avg34 of avg32's and run34's, avg32 of run31's and run32's weight averages) in one command.

    python -m tools.demo_model.recipe --work /path/DIR [--dry-run] [--list]
        [--from-stage NAME] [--until-stage NAME] [--device cuda]

Runs the nineteen training stages of docs/history/demo-model-training-log.md in order (run13 from
scratch ... run17 grown to 8 layers ... run24 ... run27-run32, run34 and run35, the long-form fine-tunes) and
three averaging stages (avg32: the mean of run31's and run32's weights; avg34: of avg32's and run34's; avg35: of
avg34's and run35's), as
subprocesses of the tools/demo_model modules (make_corpus, rebuild_spm, train, average, export, eval_all.sh,
eval_table) with the log's arguments, then
a final stage "demo": avg35 exported to WORK/demo (an HF directory, the same files as
onepass/assets/demo) and the held-out evaluation of the model card (eval_all.sh; the table is written to
WORK/eval_avg35/table.md). Nothing is written outside WORK: where the log started a stage from the
shipped directory, the recipe starts it from the previous stage's export in WORK/<corpus>/<run>/export.

Each corpus is made once, into WORK/<corpus> (demo_corpus3 ... demo_corpus9, heldout), when the first
stage that needs it starts. A marker WORK/done/<name> is written after each corpus and each stage, so
running the same command again goes on after the last finished one (delete a marker to redo that step).
A failed command stops the recipe with one line on stderr and exit status 1. ``--dry-run`` prints the
commands that would run (shell-quoted, from the repository root) and runs nothing; ``--list`` prints the
stages.

Time on 2 CPU cores, from the log: about 27 hours. Training is wall-clock bound (each stage's cosine
schedule is squeezed into its --deadline-min): 1,620 minutes (run13 82 as logged: 3,000 steps in about
20 minutes, then up to 64 more; run14-run35 their deadlines, 85 + 100 + 118 + 120 + 66 + 115 + 108 + 105 +
115 + 110 + 95 + 85 + 38 + 55 + 55 + 58 + 55 + 55 = 1,538), plus the corpora, 37 minutes (100 s, 6, 7, 6, ~6 (corpus7
was not timed), 4 minutes 16 s and about 6 for corpus9; 6 s and 2 minutes 38 s for the held-out set and
corpus9 on the machine of 2026-12-08), plus the evaluation, 11 minutes: 1,668 minutes;
add a feature pass of about 2.5 minutes before each run's clock starts and a minute per export.

``--device cuda`` passes ``--device cuda`` to every train command (train.py supports it: the model and
losses on the GPU, batches and random draws on the CPU). It has never been run on a GPU; as the
deadlines are wall clock, a GPU runs more steps per stage than the log's CPU runs did.

No rerun gives the shipped weights bit for bit: the step counts follow the machine's speed (0.4-1.2 s
per step in the log), corpus3-7 were rendered before make_corpus.py's fixed rendering blocks (same
sentences and voices, some clips' audio differs), and the training loop is onepass.training since
2026-12-07, after every logged run. run21 is not a stage: it was lost before it was measured, and run22
started from run20.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = "tools/demo_model"
FINAL = "demo"  # the last stage: export to WORK/demo and evaluate
HELDOUT = "heldout"  # the held-out set of record (exports pick their sample clips from it; evaluation)


@dataclass(frozen=True)
class Corpus:
    name: str  # its folder under WORK
    args: tuple[str, ...]  # make_corpus.py arguments besides --out


BASE = ("--train-per-lang", "4000", "--test-per-lang", "150", "--words-per-lang", "400")
WIDE = BASE + ("--extra-train-per-lang", "8000", "--train-variants", "wide")
RANDOM = WIDE + ("--random-variants", "240")
CORPORA = {c.name: c for c in (
    Corpus("demo_corpus3", BASE),  # 9 voice variants, 4,000 sentences per language
    Corpus("demo_corpus4", WIDE),  # 81 named variants, 12,000 sentences per language
    Corpus("demo_corpus5", RANDOM),  # + 240 random voices
    Corpus("demo_corpus6", RANDOM + ("--variant-seed", "1")),  # new random voices in each corpus
    Corpus("demo_corpus7", RANDOM + ("--variant-seed", "2")),
    Corpus("demo_corpus8", RANDOM + ("--variant-seed", "3", "--splits", "train", "--workers", "2")),
    Corpus("demo_corpus9", RANDOM + ("--variant-seed", "4", "--splits", "train", "--workers", "2")),
    Corpus(HELDOUT, BASE + ("--splits", "test", "--workers", "1")),
)}


@dataclass(frozen=True)
class Stage:
    name: str  # --from-stage / --until-stage and its marker
    run: str  # its run folder, WORK/<corpus>/<run>
    corpus: str  # a CORPORA name: the training clips
    config: str | None  # a config file in tools/demo_model; None to resume (the run's own config.json)
    init: str  # "scratch"; "resume" (the previous stage's run folder, the same one); "ckpt" (the previous
    # stage's ckpt.pt); "hf" (the previous stage's exported HF directory, tokenizer rebuilt first);
    # "average": no training, the mean of the weights of the stages named in ``average`` (average.py)
    minutes: int  # --deadline-min
    weights: str = "hf_last"  # what an export of this run ships: hf_last or hf_ema (the weight average)
    max_steps: int | None = None
    total_steps: int | None = None
    lazy: bool = False  # --lazy-features: log-mels computed per batch (long-form examples are built per batch)
    average: tuple[str, ...] = ()  # init "average": the earlier stages whose shipped weights are averaged


STAGES = (
    # run13 (stage 1): the log's first command was stopped by hand after step 3,000 (--max-steps 3000
    # stops it there) and resumed with --total-steps 11000 --deadline-min 64. The log's trainer counted a
    # resumed deadline from the resume; onepass.training counts the run's earlier time too (about 20
    # minutes), so 84 = 20 + 64 gives the logged schedule.
    Stage("run13a", "run13", "demo_corpus3", "demo_config.json", "scratch", 88, max_steps=3000),
    Stage("run13b", "run13", "demo_corpus3", None, "resume", 84, total_steps=11000),
    Stage("run14", "run14", "demo_corpus4", "demo_config_stage2.json", "ckpt", 85),
    Stage("run15", "run15", "demo_corpus4", "demo_config_stage3.json", "ckpt", 100),
    Stage("run16", "run16", "demo_corpus4", "demo_config_stage4.json", "ckpt", 118),
    Stage("run17", "run17", "demo_corpus4", "demo_config_stage5.json", "ckpt", 120),  # grown to 8 layers
    Stage("run18", "run18", "demo_corpus4", "demo_config_stage6.json", "hf", 66),
    Stage("run19", "run19", "demo_corpus4", "demo_config_stage7.json", "hf", 115),
    Stage("run20", "run20", "demo_corpus5", "demo_config_stage7.json", "hf", 108),
    Stage("run22", "run22", "demo_corpus6", "demo_config_stage7.json", "hf", 105),
    Stage("run23", "run23", "demo_corpus7", "demo_config_stage8.json", "hf", 115),
    Stage("run24", "run24", "demo_corpus8", "demo_config_stage8.json", "hf", 110, weights="hf_ema"),
    # run27 (issue 35): long-form examples in 40 % of the batches, the whole network, 8,000 steps (86 min)
    Stage("run27", "run27", "demo_corpus9", "demo_config_longform3.json", "hf", 95, weights="hf_ema", lazy=True),
    # run28-run30: long-form examples in 65-70 % of the batches, up to 20 s, lower peak lr (2,716, 3,116 and
    # 5,577 steps)
    Stage("run28", "run28", "demo_corpus9", "demo_config_longform4.json", "hf", 85, weights="hf_ema", lazy=True),
    Stage("run29", "run29", "demo_corpus9", "demo_config_longform5.json", "hf", 38, weights="hf_ema", lazy=True),
    Stage("run30", "run30", "demo_corpus9", "demo_config_longform6.json", "hf", 55, weights="hf_ema", lazy=True),
    # run31: 75 % long-form batches, more of them at 1120 ms (2,553 steps on a machine shared for its first 25 min)
    Stage("run31", "run31", "demo_corpus9", "demo_config_longform7.json", "hf", 55, weights="hf_ema", lazy=True),
    # run32: the same, seed 7, 4,804 steps; avg32 (shipped 2026-12-07): the mean of run31's and run32's weight averages
    Stage("run32", "run32", "demo_corpus9", "demo_config_longform8.json", "hf", 58, weights="hf_ema", lazy=True),
    Stage("avg32", "avg32", "demo_corpus9", None, "average", 0, weights="hf_ema", average=("run31", "run32")),
    # run34: from avg32, long-form clips with the words avg32 got wrong most in training streams drawn 4 times as
    # often (hard_words.py; 5,949 steps); shipped as avg34, the mean of avg32's and run34's weights
    Stage("run34", "run34", "demo_corpus9", "demo_config_longform10.json", "hf", 55, weights="hf_ema", lazy=True),
    Stage("avg34", "avg34", "demo_corpus9", None, "average", 0, weights="hf_ema", average=("avg32", "run34")),
    # run35: from avg34, the same with FastEmit 0.01 (seed 11; 7,000 steps in 47 minutes); shipped as avg35, the
    # mean of avg34's and run35's weights
    Stage("run35", "run35", "demo_corpus9", "demo_config_longform11.json", "hf", 55, weights="hf_ema", lazy=True),
    Stage("avg35", "avg35", "demo_corpus9", None, "average", 0, weights="hf_ema", average=("avg34", "run35")),
)


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]  # "python" runs as this interpreter
    stdout: Path | None = None  # written to this file instead of the terminal

    def __str__(self) -> str:
        return shlex.join(self.argv) + (f" > {shlex.quote(str(self.stdout))}" if self.stdout else "")


@dataclass(frozen=True)
class Step:
    name: str
    corpora: tuple[str, ...]  # made first, unless already done
    commands: tuple[Command, ...]


def module(name: str, *args: object) -> Command:
    return Command(("python", "-m", f"tools.demo_model.{name}", *map(str, args)))


def run_dir(work: Path, stage: Stage) -> Path:
    return work / stage.corpus / stage.run


def export_dir(work: Path, stage: Stage) -> Path:
    return run_dir(work, stage) / "export"


def export(work: Path, stage: Stage, dst: Path) -> Command:
    return module("export", "--run", run_dir(work, stage), "--corpus", work / HELDOUT, "--weights", stage.weights,
                  "--dst", dst, "--samples", dst.parent / f"{dst.name}_samples")


def make_corpus(work: Path, name: str) -> Command:
    return module("make_corpus", "--out", work / name, *CORPORA[name].args)


def plan(work: Path, device: str = "cpu") -> list[Step]:
    """Every stage's commands, in order, the final export and evaluation last."""
    steps = []
    by_name = {s.name: s for s in STAGES}
    for i, stage in enumerate(STAGES):
        prev = STAGES[i - 1] if i else None
        out = run_dir(work, stage)
        commands = []
        if stage.init == "average":
            sources = [by_name[n] for n in stage.average]
            commands.append(module("average", "--out", out / stage.weights,
                                   *(run_dir(work, s) / s.weights for s in sources)))
            corpora: tuple[str, ...] = ()
            if i + 1 < len(STAGES) and STAGES[i + 1].init == "hf":
                commands.append(export(work, stage, export_dir(work, stage)))
                corpora = (HELDOUT,)
            steps.append(Step(stage.name, corpora, tuple(commands)))
            continue
        train = ["--corpus", work / stage.corpus, "--out", out]
        if stage.config:
            train += ["--config", f"{TOOLS}/{stage.config}"]
        if stage.init == "resume":
            train += ["--resume"]
        elif stage.init == "ckpt":
            train += ["--init-from", run_dir(work, prev) / "ckpt.pt"]
        elif stage.init == "hf":
            commands.append(module("rebuild_spm", "--out", out, "--check", export_dir(work, prev)))
            train += ["--init-from", export_dir(work, prev)]
        if stage.total_steps:
            train += ["--total-steps", stage.total_steps]
        if stage.max_steps:
            train += ["--max-steps", stage.max_steps]
        if stage.lazy:
            train += ["--lazy-features"]
        train += ["--deadline-min", stage.minutes]
        if device != "cpu":
            train += ["--device", device]
        commands.append(module("train", *train))
        corpora = (stage.corpus,)
        if i + 1 < len(STAGES) and STAGES[i + 1].init == "hf":
            commands.append(export(work, stage, export_dir(work, stage)))
            corpora += (HELDOUT,)
        steps.append(Step(stage.name, corpora, tuple(commands)))
    last, evals = STAGES[-1], work / f"eval_{STAGES[-1].run}"
    steps.append(Step(FINAL, (HELDOUT, last.corpus), (
        export(work, last, work / "demo"),
        Command(("ln", "-sf", str(work / last.corpus / "train.jsonl"), str(work / HELDOUT / "train.jsonl"))),
        Command(("bash", f"{TOOLS}/eval_all.sh", str(work / "demo"), str(work / HELDOUT), str(evals))),
        Command(module("eval_table", evals / "results.jsonl").argv, stdout=evals / "table.md"),
    )))
    return steps


def run_command(command: Command) -> int:
    """Run one command from the repository root; its exit status (127: it could not be started)."""
    argv = [sys.executable, *command.argv[1:]] if command.argv[0] == "python" else list(command.argv)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    try:
        if command.stdout is None:
            return subprocess.run(argv, cwd=REPO, env=env).returncode
        command.stdout.parent.mkdir(parents=True, exist_ok=True)
        with open(command.stdout, "w", encoding="utf-8") as f:
            return subprocess.run(argv, cwd=REPO, env=env, stdout=f).returncode
    except OSError:
        return 127


def list_stages() -> None:
    for i, s in enumerate(STAGES):
        prev = STAGES[i - 1].run if i else ""
        if s.init == "average":
            print(f"{s.name:7} {s.corpus:13} {'-':24} {'mean of ' + ', '.join(s.average):17} (no training)")
            continue
        init = {"scratch": "from scratch", "resume": f"resume {s.run}", "ckpt": f"ckpt.pt of {prev}",
                "hf": f"export of {prev}"}[s.init]
        limit = f", to step {s.max_steps or s.total_steps}" if s.max_steps or s.total_steps else ""
        print(f"{s.name:7} {s.corpus:13} {s.config or '(resumed)':24} {init:17} {s.minutes} min{limit}")
    last = STAGES[-1]
    print(f"{FINAL:7} {HELDOUT:13} {'-':24} {'export of ' + last.run:17} {last.weights} to WORK/demo, "
          f"eval_all.sh (~11 min)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, help="folder for the corpora, runs, exports and evaluation")
    ap.add_argument("--dry-run", action="store_true", help="print the commands that would run; run nothing")
    ap.add_argument("--list", action="store_true", help="print the stages, one line each")
    names = [s.name for s in STAGES] + [FINAL]
    ap.add_argument("--from-stage", choices=names, default=names[0], help="skip the stages before this one")
    ap.add_argument("--until-stage", choices=names, default=FINAL, help="stop after this stage")
    ap.add_argument("--device", default="cpu", help="train.py's --device (cuda: on the GPU)")
    args = ap.parse_args(argv)
    if args.list:
        list_stages()
        return 0
    if args.work is None:
        ap.error("--work is required")
    work = args.work.resolve()
    done_dir = work / "done"
    first, last = names.index(args.from_stage), names.index(args.until_stage)
    if first > last:
        ap.error(f"--from-stage {args.from_stage} comes after --until-stage {args.until_stage}")
    steps = plan(work, args.device)[first:last + 1]
    made: set[str] = set()  # corpora made (or printed) in this call

    def step(name: str, commands: tuple[Command, ...]) -> bool:
        if args.dry_run:
            print(f"# {name}")
            for command in commands:
                print(command)
            return True
        for command in commands:
            print(f"+ {command}", flush=True)
            status = run_command(command)
            if status != 0:
                print(f"recipe: stage {name} failed: exit status {status} from {shlex.join(command.argv[:3])} "
                      f"(log above; rerun the same command to go on from this stage)", file=sys.stderr)
                return False
        done_dir.mkdir(parents=True, exist_ok=True)
        (done_dir / name).touch()
        return True

    for s in steps:
        for corpus in s.corpora:
            if corpus not in made and not (done_dir / corpus).exists():
                if not step(corpus, (make_corpus(work, corpus),)):
                    return 1
            made.add(corpus)
        if (done_dir / s.name).exists():
            print(f"# {s.name}: done ({done_dir / s.name})")
        elif not step(s.name, s.commands):
            return 1
    if steps[-1].name == FINAL and not args.dry_run:
        print(f"held-out tables: {steps[-1].commands[-1].stdout}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
