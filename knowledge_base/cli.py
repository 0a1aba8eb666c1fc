"""`python -m knowledge_base build | query | evaluate` (in the action-server runtime).

    build SOURCE... --out DIR        encode every question and alternative, save a FAISS index
    query DIR "text" [--k 5]         search a saved index; shows what the assistant would do
    evaluate --faqs FILE --queries FILE [--calibrate] [--plot PNG]
                                     P@1, MRR@10, Recall@5 and abstention, beside BM25

Exit status: 0 done, 2 bad input (message on stderr says what to fix).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from knowledge_base import store
from knowledge_base.build import build_index, encode_all, expected_hash, warm_up
from knowledge_base.encoder import Encoder, MiniLMEncoder
from knowledge_base.errors import FaqValidationError, IndexUnavailable, KnowledgeBaseError, KnowledgeBaseUnavailable
from knowledge_base.evaluate import (
    Query,
    Ranking,
    answer_curve,
    best_threshold,
    calibrate,
    policy_summary,
    ranking_metrics,
    read_queries,
    score_grid,
)
from knowledge_base.index import set_threads
from knowledge_base.loader import FaqEntry, faq_files, load_files
from knowledge_base.policy import FaqHit, decide
from knowledge_base.service import KnowledgeBase
from knowledge_base.settings import DEFAULT_CONFIG, FaqSettings, load_settings

EncoderFactory = Callable[[], Encoder]
DENSE_GRID = [round(0.30 + 0.025 * i, 3) for i in range(27)]  # 0.30 .. 0.95


class UsageError(KnowledgeBaseError):
    """Bad input on the command line; the message says what to do."""


def main(argv: Optional[Sequence[str]] = None, encoder_factory: EncoderFactory = MiniLMEncoder) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args, encoder_factory) or 0)
    except (KnowledgeBaseError, KnowledgeBaseUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m knowledge_base", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build and save the FAISS index of FAQ files or folders")
    build.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help="FAQ files (.yml, .yaml, .json) or folders of them")
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for index.faiss, entries.json, manifest.json")
    build.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="settings (ignore_terms, index kind); default: %(default)s")
    build.add_argument("--force", action="store_true", help="rebuild even when the saved index is up to date")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(run=_build)

    query = commands.add_parser("query", help="search a saved index")
    query.add_argument("index", type=Path, metavar="DIR")
    query.add_argument("text")
    query.add_argument("--k", type=int, default=5, help="entries to show (default %(default)s)")
    query.add_argument("--json", action="store_true", help="print JSON instead of a table")
    query.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="answer thresholds; default: %(default)s")
    query.set_defaults(run=_query)

    evaluate = commands.add_parser("evaluate", help="measure retrieval and abstention against labelled queries, beside BM25")
    evaluate.add_argument("--faqs", type=Path, required=True, metavar="FILE", help="FAQ file or folder (YAML or JSON)")
    evaluate.add_argument(
        "--queries", type=Path, required=True, action="append", metavar="FILE", help='JSON lines {"query": ..., "faq_id": ... or null}; repeatable'
    )
    evaluate.add_argument(
        "--check", type=Path, action="append", default=[], metavar="FILE", help="held-out queries to apply the chosen thresholds to; repeatable"
    )
    evaluate.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="settings and configured thresholds; default: %(default)s")
    evaluate.add_argument("--calibrate", action="store_true", help="also choose thresholds on these queries and print them as YAML")
    evaluate.add_argument("--wrong-answer-cost", type=float, default=3.0, help="calibration: a wrong answer costs this many right ones (default %(default)s)")
    evaluate.add_argument("--max-null-offered", type=float, default=0.25, help="calibration: abstain queries that may see suggestions (default %(default)s)")
    evaluate.add_argument("--plot", type=Path, metavar="PNG", help="draw the answer-rate / precision curves")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of tables")
    evaluate.set_defaults(run=_evaluate)
    return parser


# -- build -----------------------------------------------------------------------


def _expand(sources: Sequence[Path]) -> List[Path]:
    files: List[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(faq_files(source))
        elif source.is_file():
            files.append(source)
        else:
            raise UsageError(f"{source}: no such file or folder")
    if not files:
        raise UsageError(f"no FAQ files (.yml, .yaml, .json) in {', '.join(map(str, sources))}")
    return files


def _load_entries(sources: Sequence[Path]) -> tuple[List[Path], List[FaqEntry]]:
    files = _expand(sources)
    try:
        entries = load_files(files)
    except FaqValidationError as exc:
        raise UsageError(str(exc)) from exc
    if not entries:
        raise UsageError(f"no FAQ entries in {', '.join(map(str, files))}")
    return files, entries


def _build(args: argparse.Namespace, encoder_factory: EncoderFactory) -> int:
    files, entries = _load_entries(args.sources)
    settings = load_settings(args.config)
    encoder = encoder_factory()
    if not args.force:
        try:
            current = store.load(args.out, encoder.identity(), settings.index, expected_hash(entries, encoder, settings))
            print(f"{args.out}: up to date ({current.manifest.entries} entries, {current.manifest.vectors} vectors, built {current.manifest.built_at})")
            return 0
        except IndexUnavailable as exc:
            if not args.quiet:
                print(f"building {args.out}: {exc.problem}", file=sys.stderr)
    warm_up(encoder)  # so that the build time and rate are about encoding, not loading the model
    saved = build_index(entries, encoder, settings, files, progress=not args.quiet)
    manifest = store.save(args.out, saved)
    rate = manifest.vectors / manifest.build_seconds if manifest.build_seconds else float("inf")
    print(
        f"{args.out}: {manifest.entries} entries, {manifest.vectors} vectors of {manifest.dim} dimensions, "
        f"{manifest.index_kind} index, built in {manifest.build_seconds:.1f}s ({rate:.0f} vectors/s)"
    )
    return 0


# -- query -----------------------------------------------------------------------


def _query(args: argparse.Namespace, encoder_factory: EncoderFactory) -> int:
    text = " ".join(args.text.split())
    if not text:
        raise UsageError("the query is empty; ask a question, e.g. \"How do I reset my password?\"")
    if not 1 <= args.k <= 100:
        raise UsageError(f"--k must be between 1 and 100, got {args.k}")
    settings = load_settings(args.config)
    encoder = encoder_factory()
    saved = store.load(args.index, encoder.identity(), settings.index)
    for changed in store.changed_sources(saved.manifest):
        print(f"warning: the index is stale, {changed} since it was built; run build again", file=sys.stderr)
    if len(text) > settings.max_query_chars:
        print(f"note: the query is {len(text)} characters; the first {settings.max_query_chars} are searched", file=sys.stderr)
    set_threads(settings.index.threads)
    knowledge_base = KnowledgeBase.from_saved(saved, encoder, settings)
    load_seconds = warm_up(encoder)
    started = time.perf_counter()
    hits = knowledge_base.search(text, k=args.k)
    elapsed_ms = (time.perf_counter() - started) * 1000
    decision = decide(hits, settings)
    if args.json:
        print(json.dumps({
            "query": text,
            "decision": decision.outcome.value,
            "answered": [h.entry.id for h in decision.hits],
            "search_ms": round(elapsed_ms, 2),
            "hits": [
                {"faq_id": h.entry.id, "score": round(h.score, 4), "coverage": round(h.coverage, 3), "question": h.entry.question, "matched": h.matched, "url": h.entry.url}
                for h in hits
            ],
        }, ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print(f"nothing left to search for once the ignored words ({', '.join(settings.ignore_terms)}) are removed")
    elif settings.lexical_weight > 0:
        print(f"ranked by score fused with BM25 (lexical_weight {settings.lexical_weight}); score = semantic similarity")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.score:.3f}  {hit.entry.id}  {hit.entry.question}  (words covered {hit.coverage:.0%})")
        if hit.matched != hit.entry.question:
            print(f"          matched: {hit.matched}")
    print(f"\nthe assistant would: {_describe(decision.outcome.value, [h.entry.id for h in decision.hits])}")
    print(f"(model loaded in {load_seconds:.1f}s; encoding and search took {elapsed_ms:.1f} ms)")
    return 0


def _describe(outcome: str, ids: Sequence[str]) -> str:
    if outcome == "answer":
        return f"answer with {ids[0]}"
    if outcome == "suggest":
        return f"ask \"did you mean\": {', '.join(ids)}"
    return "say it does not know, log the question and offer a person"


# -- evaluate --------------------------------------------------------------------


def _evaluate(args: argparse.Namespace, encoder_factory: EncoderFactory) -> int:
    _, entries = _load_entries([args.faqs])
    known = {entry.id for entry in entries}
    queries = [query for path in args.queries for query in read_queries(path, known)]
    checks = [(path, read_queries(path, known)) for path in args.check]
    settings = load_settings(args.config)
    encoder = encoder_factory()
    progress = not args.json
    saved = build_index(entries, encoder, settings, progress=progress)
    knowledge_base = KnowledgeBase.from_saved(saved, encoder, settings)
    hit_lists = _hit_lists(knowledge_base, queries, progress)
    dense: List[Ranking] = [[(h.entry.id, h.score) for h in hits] for hits in hit_lists]
    lexical: List[Ranking] = [
        [(entries[h.entry].id, h.score) for h in knowledge_base.lexical.search(knowledge_base.clean(q.text), 10)] for q in queries
    ]

    report = _report(args, entries, queries, saved.index.kind, dense, lexical, hit_lists, settings)
    chosen = report["dense"].get("calibrated", report["dense"]["configured"])["settings"]
    for path, check_queries in checks:
        check_settings = dataclasses.replace(settings, **chosen)
        summary = policy_summary(check_queries, _hit_lists(knowledge_base, check_queries, progress), check_settings)
        report.setdefault("checks", []).append({"file": str(path), "queries": len(check_queries), "settings": chosen, **summary})
    if args.plot:
        _plot(args.plot, report)
        report["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


def _hit_lists(knowledge_base: KnowledgeBase, queries: Sequence[Query], progress: bool) -> List[List[FaqHit]]:
    """What the production search returns for each query (ten entries, best first)."""
    texts = [knowledge_base.clean(q.text) for q in queries]
    vectors = encode_all(knowledge_base.encoder, texts, progress=progress, label="queries")
    return [knowledge_base.rank(text, vector, 10) if text.strip() else [] for text, vector in zip(texts, vectors)]


def _report(
    args: argparse.Namespace,
    entries: Sequence[FaqEntry],
    queries: Sequence[Query],
    kind: str,
    dense: Sequence[Ranking],
    lexical: Sequence[Ranking],
    hit_lists: Sequence[Sequence[FaqHit]],
    settings: FaqSettings,
) -> Dict[str, Any]:
    dense_curve = answer_curve(queries, dense, DENSE_GRID)
    lexical_curve = answer_curve(queries, lexical, score_grid(lexical))
    report: Dict[str, Any] = {
        "faqs": str(args.faqs),
        "queries_files": [str(path) for path in args.queries],
        "entries": len(entries),
        "queries": len(queries),
        "in_scope": sum(q.faq_id is not None for q in queries),
        "to_abstain": sum(q.faq_id is None for q in queries),
        "index_kind": kind,
        "dense": {
            "ranking": ranking_metrics(queries, dense),
            "curve": dense_curve,
            "configured": {"settings": _threshold_dict(settings), **policy_summary(queries, hit_lists, settings)},
            "best_single_threshold": best_threshold(dense_curve, args.wrong_answer_cost),
        },
        "bm25": {
            "ranking": ranking_metrics(queries, lexical),
            "curve": lexical_curve,
            "best_single_threshold": best_threshold(lexical_curve, args.wrong_answer_cost),
        },
        "wrong_answer_cost": args.wrong_answer_cost,
    }
    if args.calibrate:
        chosen, summary = calibrate(queries, hit_lists, settings, args.wrong_answer_cost, args.max_null_offered)
        report["dense"]["calibrated"] = {"settings": _threshold_dict(chosen), "max_null_offered": args.max_null_offered, **summary}
    return report


def _threshold_dict(settings: FaqSettings) -> Dict[str, float]:
    return {
        "answer_threshold": settings.answer_threshold,
        "answer_margin": settings.answer_margin,
        "min_coverage": settings.min_coverage,
        "suggest_threshold": settings.suggest_threshold,
    }


def _print_report(report: Dict[str, Any]) -> None:
    dense, lexical = report["dense"], report["bm25"]
    print(
        f"\n{report['entries']} FAQ entries, {report['queries']} queries ({report['in_scope']} in scope, "
        f"{report['to_abstain']} to abstain); dense = MiniLM + FAISS {report['index_kind']}, BM25 = bm25s\n"
    )
    print(f"{'':34}{'dense':>10}{'BM25':>10}")
    for key, label in (("p_at_1", "P@1"), ("mrr_at_10", "MRR@10"), ("recall_at_5", "Recall@5")):
        print(f"{label:34}{dense['ranking'][key]:>10.3f}{lexical['ranking'][key]:>10.3f}")
    print(f"\nbest single threshold (right answers minus {report['wrong_answer_cost']:g} x wrong ones):")
    for name, side in (("dense", dense), ("BM25", lexical)):
        point = side["best_single_threshold"]
        if point is None:
            print(f"  {name:6} no threshold answers anything")
        else:
            print(
                f"  {name:6} threshold {point['threshold']:<8} answers {point['answer_rate']:.1%}, precision {point['precision']:.3f}, "
                f"in-scope accuracy {point['in_scope_accuracy']:.3f}, abstain recall {point['abstain_recall']:.3f}"
            )
    for title, key in (("configured thresholds", "configured"), ("calibrated on these queries", "calibrated")):
        if key in dense:
            _print_policy(title, dense[key])
    for check in report.get("checks", []):
        _print_policy(f"the same thresholds on {check['file']} ({check['queries']} queries)", check)
    print("\nanswer-rate / precision curve (dense):")
    print("  threshold  answered  precision  in-scope acc  abstain recall")
    for point in dense["curve"]:
        print(f"  {point['threshold']:<9.3f}  {point['answer_rate']:>7.1%}  {point['precision']:>9.3f}  {point['in_scope_accuracy']:>12.3f}  {point['abstain_recall']:>14.3f}")
    if "plot" in report:
        print(f"\ncurves drawn in {report['plot']}")


def _print_policy(title: str, summary: Dict[str, Any]) -> None:
    s = summary["settings"]
    print(
        f"\nanswer policy, {title} (answer >= {s['answer_threshold']}, margin {s['answer_margin']}, "
        f"coverage >= {s['min_coverage']}, suggest >= {s['suggest_threshold']}):"
    )
    print(f"  in-scope accuracy (answered with the right entry)  {summary['in_scope_accuracy']:.3f}")
    print(f"  right entry answered or suggested                  {summary['right_entry_offered']:.3f}")
    print(f"  precision of answers                               {summary['precision']:.3f}")
    print(f"  abstain recall (said it does not know)             {summary['abstain_recall']:.3f}")
    print(f"  abstain queries not answered (incl. suggestions)   {summary['abstain_not_answered']:.3f}")
    if "max_null_offered" in summary:
        print("  as configuration (knowledge_base/config.yml):")
        for name, value in s.items():
            print(f"    {name}: {value}")


def _plot(path: Path, report: Dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, side, style in (("dense (MiniLM + FAISS)", report["dense"], "-o"), ("BM25", report["bm25"], "-s")):
        curve = sorted(side["curve"], key=lambda p: p["answer_rate"])
        axis.plot([p["answer_rate"] for p in curve], [p["precision"] for p in curve], style, markersize=3, label=name)
        point = side["best_single_threshold"]
        if point:
            axis.annotate(f"{point['threshold']}", (point["answer_rate"], point["precision"]), textcoords="offset points", xytext=(5, -12))
    for key, marker in (("configured", "*"), ("calibrated", "D")):
        if key in report["dense"]:
            summary = report["dense"][key]
            rate = (summary["answered_right"] + summary["answered_wrong"] + summary["null_answered"]) / report["queries"]
            axis.plot([rate], [summary["precision"]], marker, markersize=11, label=f"policy, {key}")
    for check in report.get("checks", []):
        rate = (check["answered_right"] + check["answered_wrong"] + check["null_answered"]) / check["queries"]
        axis.plot([rate], [check["precision"]], "X", markersize=10, label=f"policy on {Path(check['file']).name}")
    axis.set_xlabel("share of queries answered")
    axis.set_ylabel("precision of answers")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"Answer or abstain: {report['queries']} queries, {report['to_abstain']} should abstain")
    axis.legend(loc="lower left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
