"""Measure where the answer thresholds should sit, from the FAQ content itself.

Positives: every alternative (and every question) queries the index with that
one phrasing removed (leave-one-out), so its entry must be found through its
*other* phrasings, as a customer's new wording would be. Negatives: questions
the FAQ cannot answer (Banking77, out-of-scope NLU examples). Held-out
ask_question examples (unlabelled) show what real wording scores.
The policy applied is the production one (`knowledge_base.policy.decide`).

    python -m knowledge_base.thresholds \\
        --negatives-csv /path/to/banking77/test.csv \\
        --negatives-nlu nlu_data/nlu/out_of_scope.yml --negatives-nlu nlu_data/test/nlu_test.yml \\
        --questions-nlu nlu_data/test/nlu_test.yml
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from knowledge_base.loader import FaqEntry, load_directory
from knowledge_base.policy import FaqHit, Outcome, decide
from knowledge_base.search import best_per_entry, normalise, phrasing_table, remove_terms
from knowledge_base.service import DEFAULT_FAQ_DIR, Encoder
from knowledge_base.settings import DEFAULT_CONFIG, FaqSettings, load_settings

TOP_K = 3


@dataclass(frozen=True)
class Trial:
    query: str
    expected: Optional[FaqEntry]  # None for a negative or an unlabelled question
    hits: Tuple[FaqHit, ...]  # best first


def _hits(entries: Sequence[FaqEntry], texts: Sequence[str], vector: np.ndarray, vectors: np.ndarray, owners: np.ndarray, rows: np.ndarray) -> Tuple[FaqHit, ...]:
    found = best_per_entry(vector, vectors[rows], owners[rows], TOP_K)
    return tuple(FaqHit(entries[h.entry], h.score, texts[rows[h.row]]) for h in found)


def leave_one_out(entries: Sequence[FaqEntry], texts: Sequence[str], vectors: np.ndarray, owners: np.ndarray) -> List[Trial]:
    """Each phrasing queries the index without itself; entries with one phrasing are skipped."""
    counts = np.bincount(owners, minlength=len(entries))
    everything = np.arange(len(texts))
    trials = []
    for row, text in enumerate(texts):
        if counts[owners[row]] < 2:
            continue
        rows = everything[everything != row]
        trials.append(Trial(text, entries[int(owners[row])], _hits(entries, texts, vectors[row], vectors, owners, rows)))
    return trials


def against_index(
    entries: Sequence[FaqEntry], texts: Sequence[str], vectors: np.ndarray, owners: np.ndarray, queries: Sequence[str], query_vectors: np.ndarray
) -> List[Trial]:
    rows = np.arange(len(texts))
    return [Trial(q, None, _hits(entries, texts, v, vectors, owners, rows)) for q, v in zip(queries, query_vectors)]


def outcome(trial: Trial, settings: FaqSettings) -> str:
    """answer_right / answer_wrong / suggest_right / suggest_wrong / unknown (right: expected entry offered)."""
    decision = decide(trial.hits, settings)
    if decision.outcome is Outcome.UNKNOWN:
        return "unknown"
    offered = {hit.entry.id for hit in decision.hits}
    right = trial.expected is not None and trial.expected.id in offered
    return f"{decision.outcome.value}_{'right' if right else 'wrong'}"


def tally(trials: Sequence[Trial], settings: FaqSettings) -> Dict[str, float]:
    counts = collections.Counter(outcome(t, settings) for t in trials)
    total = max(len(trials), 1)
    return {key: counts[key] / total for key in ("answer_right", "answer_wrong", "suggest_right", "suggest_wrong", "unknown")}


def percentiles(scores: Sequence[float], points: Sequence[int] = (5, 10, 25, 50, 75, 90, 95, 99)) -> str:
    if not scores:
        return "(none)"
    values = np.percentile(np.asarray(scores), points)
    return "  ".join(f"p{p}={v:.3f}" for p, v in zip(points, values))


def read_csv_texts(path: Path, column: str = "text") -> List[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row[column] for row in csv.DictReader(handle) if row.get(column)]


def read_nlu_examples(path: Path, intent: str) -> List[str]:
    """Examples of one intent from a Rasa NLU YAML file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    examples: List[str] = []
    for block in data.get("nlu", []):
        if block.get("intent") == intent:
            for line in str(block.get("examples", "")).splitlines():
                line = line.strip()
                if line.startswith("- "):
                    examples.append(line[2:].strip())
    return examples


def _grid(spec: str) -> Iterable[float]:
    start, stop, step = (float(x) for x in spec.split(":"))
    return [round(x, 3) for x in np.arange(start, stop + 1e-9, step)]


def main(argv: Optional[Sequence[str]] = None, encoder: Optional[Encoder] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faqs", type=Path, default=DEFAULT_FAQ_DIR)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--negatives-csv", type=Path, action="append", default=[])
    parser.add_argument("--negatives-nlu", type=Path, action="append", default=[], help="out_of_scope examples")
    parser.add_argument("--questions-nlu", type=Path, action="append", default=[], help="ask_question examples (unlabelled)")
    parser.add_argument("--answer-grid", default="0.55:0.75:0.025")
    parser.add_argument("--margin-grid", default="0:0.08:0.02")
    parser.add_argument("--suggest-grid", default="0.40:0.60:0.025")
    args = parser.parse_args(argv)

    settings = load_settings(args.config)
    if encoder is None:
        from knowledge_base.encoder import MiniLMEncoder

        encoder = MiniLMEncoder()

    def encode(texts: Sequence[str]) -> np.ndarray:
        return normalise(encoder.encode([remove_terms(t, settings.ignore_terms) for t in texts]))

    entries = load_directory(args.faqs)
    texts, owners = phrasing_table(entries)
    vectors = encode(texts)
    print(f"{len(entries)} entries, {len(texts)} phrasings from {args.faqs}; ignore_terms={list(settings.ignore_terms)}")

    positives = leave_one_out(entries, texts, vectors, owners)
    top1 = np.mean([t.hits[0].entry.id == t.expected.id for t in positives])  # type: ignore[union-attr]
    top3 = np.mean([t.expected.id in {h.entry.id for h in t.hits} for t in positives])  # type: ignore[union-attr]
    print(f"\nleave-one-out positives: n={len(positives)} top-1={top1:.3f} top-3={top3:.3f}")
    print("  best score when top-1 is right:", percentiles([t.hits[0].score for t in positives if t.hits[0].entry == t.expected]))
    print("  best score when top-1 is wrong:", percentiles([t.hits[0].score for t in positives if t.hits[0].entry != t.expected]))

    negative_sets: List[Tuple[str, List[Trial]]] = []
    for path in args.negatives_csv:
        queries = read_csv_texts(path)
        negative_sets.append((str(path), against_index(entries, texts, vectors, owners, queries, encode(queries))))
    for path in args.negatives_nlu:
        queries = read_nlu_examples(path, "out_of_scope")
        negative_sets.append((f"{path} out_of_scope", against_index(entries, texts, vectors, owners, queries, encode(queries))))
    negatives = [t for _, trials in negative_sets for t in trials]
    for name, trials in negative_sets:
        print(f"\nnegatives {name}: n={len(trials)}", percentiles([t.hits[0].score for t in trials]))
        for trial in sorted(trials, key=lambda t: -t.hits[0].score)[:3]:
            print(f"    {trial.hits[0].score:.3f}  {trial.query!r} -> {trial.hits[0].entry.id}")

    print("\nanswer threshold x margin (suggest threshold held at the configured value):")
    print("  answer  margin | positives: answered  wrong answers  precision | negatives answered")
    for threshold in _grid(args.answer_grid):
        for margin in _grid(args.margin_grid):
            trial_settings = dataclasses.replace(settings, answer_threshold=threshold, answer_margin=margin, suggest_threshold=min(settings.suggest_threshold, threshold))
            pos = tally(positives, trial_settings)
            answered = pos["answer_right"] + pos["answer_wrong"]
            precision = pos["answer_right"] / answered if answered else 1.0
            neg = tally(negatives, trial_settings)
            print(f"  {threshold:.3f}   {margin:.2f}  |  {answered:.3f}      {pos['answer_wrong']:.3f}          {precision:.3f}     |  {neg['answer_wrong']:.3f}")

    print("\nsuggest threshold (answer threshold and margin as configured):")
    print("  suggest | positives: right entry offered  unknown | negatives offered something, per set")
    for threshold in _grid(args.suggest_grid):
        if threshold > settings.answer_threshold:
            continue
        trial_settings = dataclasses.replace(settings, suggest_threshold=threshold)
        pos = tally(positives, trial_settings)
        offered = "  ".join(f"{1 - tally(trials, trial_settings)['unknown']:.3f}" for _, trials in negative_sets)
        print(f"  {threshold:.3f}   |  {pos['answer_right'] + pos['suggest_right']:.3f}                     {pos['unknown']:.3f}  |  {offered}")

    print(f"\nwith the configured settings: answer>={settings.answer_threshold} margin>={settings.answer_margin} suggest>={settings.suggest_threshold}")
    print("  positives:", {k: round(v, 3) for k, v in tally(positives, settings).items()})
    for name, trials in negative_sets:
        print(f"  negatives {name}:", {k: round(v, 3) for k, v in tally(trials, settings).items() if k != "answer_right" and k != "suggest_right"})
    for path in args.questions_nlu:
        queries = read_nlu_examples(path, "ask_question")
        trials = against_index(entries, texts, vectors, owners, queries, encode(queries))
        outcomes = collections.Counter(decide(t.hits, settings).outcome.value for t in trials)
        print(f"\nheld-out ask_question examples {path}: n={len(trials)} {dict(outcomes)}")
        print("   ", percentiles([t.hits[0].score for t in trials]))
        for trial in sorted(trials, key=lambda t: -t.hits[0].score):
            decision = decide(trial.hits, settings)
            print(f"    {decision.outcome.value:8s} {trial.hits[0].score:.3f}  {trial.query!r} -> {[h.entry.id for h in decision.hits] or trial.hits[0].entry.id}")


if __name__ == "__main__":
    main()
