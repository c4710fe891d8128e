"""The monthly_retrain stages as plain functions (the DAG only wires them; the CLI can call them too).

snapshot → validate → plan (docker | local | reuse | evaluate-only) → train → evaluate → gate →
register (+ promote). Every stage takes the run's params dict (the DAG's Params) and returns a
small JSON-able dict for XCom; the large outputs (snapshot, candidate model, evaluation reports,
gate.json) live under ``$NEWS_SIGNALS_HOME``:

    snapshots/<snapshot_id>/                  the training snapshot (reused when identical)
    runs/<snapshot_id>/<train_key>/candidate  the trained artifact (reused on a re-run)
    runs/<snapshot_id>/<train_key>/evaluation.json, gate.json, eval/<classifier>/report.json

``train_key`` hashes base model, epochs, sample size and seed, so re-running the same month with
the same Params reuses the snapshot and the candidate, the registry finds the same files already
registered (no duplicate version), and the gate compares the model with itself (kept).
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from news_signals.core.storage import Storage
from news_signals.retrain.gate import GateThresholds
from news_signals.retrain.human_labels import DEFAULT_HUMAN_WEIGHT

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"

GATE_KEYS = tuple(f.name for f in fields(GateThresholds))  # the gate's thresholds, each a DAG Param


@dataclass
class RetrainParams:
    """The DAG's Params, typed and checked (unknown keys are ignored: Airflow adds its own)."""

    evaluate_only: bool = False
    model_version: int | None = None  # with evaluate_only: which version (default: production)
    sample_size: int | None = None
    epochs: int = 3
    train_path: str = "fast"  # trainer --train-path: fast (cached frozen lower layers) or full (docs/MODEL.md)
    base_model: str = "minilm"
    languages: str = "auto"  # trainer --languages: auto = what the base model knows (minilm: en)
    lookback_days: int = 30
    seed: int = 13
    labeller: str = "auto"
    llm_fallback: bool = False  # labeller llm with its endpoint down at the start: relabel with hybrid (recorded)
    trainer_backend: str = "auto"
    dedupe_threshold: float = 0.9
    min_rows_per_category: int = 5
    max_label_shift_kl: float = 0.5
    gold_file: str | None = None
    human_labels: bool = True  # training-part human labels override bootstrap labels in the snapshot
    human_weight: float = DEFAULT_HUMAN_WEIGHT  # their loss weight
    heldout_min_rows: int = 50  # labelled held-out rows a category needs to be gated (else reported)
    bootstrap_samples: int = 1000  # resamples for the gate's paired confidence intervals
    force_promote: bool = False
    reason: str = ""
    threads: int | None = None
    latency_samples: int = 50  # texts timed one by one for p50/p95 latency
    model_name: str | None = None
    require_approval: bool | None = None  # a person approves a PROMOTE (None: Settings().require_approval)
    rollback_to: int | None = None  # only move production back to this version (nothing is trained)
    gate: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> RetrainParams:
        params = dict(params or {})
        known = {f.name for f in fields(cls)} - {"gate"}
        values = {k: params[k] for k in known if k in params and params[k] not in ("", None)}
        gate = {k: params[k] for k in GATE_KEYS if params.get(k) not in ("", None)}
        out = cls(**values, gate=gate)
        if out.force_promote and not out.reason.strip():
            raise ValueError(
                "force_promote is set but 'reason' is empty: say why (it is recorded in gate.json)"
            )
        GateThresholds.from_mapping(out.gate)  # fail at the start, not after training
        return out

    def train_key(self) -> str:
        blob = json.dumps(
            [self.base_model, self.epochs, self.sample_size, self.seed, self.languages, self.train_path], sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _storage(storage: Storage | None) -> Storage:
    return storage or Storage()


def _logical_day(logical_date: Any) -> str:
    return str(logical_date)[:10]


# ---- 1. snapshot ---------------------------------------------------------------------------------
def snapshot_stage(
    logical_date: Any, params: dict[str, Any], storage: Storage | None = None
) -> dict[str, Any]:
    from news_signals.retrain.snapshot import SnapshotParams, build_snapshot

    p = RetrainParams.from_params(params)
    result = build_snapshot(
        SnapshotParams(
            end_date=_logical_day(logical_date),
            lookback_days=int(p.lookback_days),
            labeller=p.labeller,
            dedupe_threshold=float(p.dedupe_threshold),
            min_rows_per_category=int(p.min_rows_per_category),
            seed=int(p.seed),
            human_labels=bool(p.human_labels),
            human_weight=float(p.human_weight),
            llm_fallback=bool(p.llm_fallback),
        ),
        _storage(storage),
    )
    m = result.manifest
    return {
        "snapshot_id": result.id,
        "snapshot_path": result.path,
        "counts": m["counts"],
        "labeller": m["labeller"],
        "labeller_stats": m.get("labeller_stats"),  # the LLM's requests, cache hits, failures, tokens, cost
        "reused": result.reused,
        "disagreements": m.get("disagreements", {}).get("rows", 0),
        "human_labels": {k: v for k, v in (m.get("human_labels") or {}).items() if k in ("matched_rows", "heldout_excluded", "heldout_articles")},
    }


# ---- 2. validate ---------------------------------------------------------------------------------
def validate_stage(
    snapshot_id: str, params: dict[str, Any], storage: Storage | None = None
) -> dict[str, Any]:
    from news_signals.retrain.validation import SnapshotChecks, check_snapshot

    p = RetrainParams.from_params(params)
    report = check_snapshot(
        snapshot_id,
        _storage(storage),
        SnapshotChecks(
            min_train_rows=int(p.min_rows_per_category), max_label_shift_kl=float(p.max_label_shift_kl)
        ),
    )
    return {
        "snapshot_id": snapshot_id,
        "success": report.success,
        "previous": report.previous_id,
        "warnings": report.warnings,
    }


# ---- 3. plan -------------------------------------------------------------------------------------
def plan_stage(snapshot_id: str, params: dict[str, Any], storage: Storage | None = None) -> dict[str, Any]:
    """Where the candidate goes, which backend trains it, or why no training is needed."""
    from news_signals.retrain.trainer import (
        CONTAINER_BASE_MODEL,
        CONTAINER_OUT,
        CONTAINER_SNAPSHOT,
        TrainJob,
        host_path,
        resolve_backend,
        trainer_args,
    )

    p = RetrainParams.from_params(params)
    storage = _storage(storage)
    work = storage.path("runs", snapshot_id, p.train_key())
    storage.fs.makedirs(work, exist_ok=True)
    candidate = posixpath.join(work, "candidate")
    job = TrainJob(
        snapshot_dir=storage.snapshot_dir(snapshot_id),
        out_dir=candidate,
        base_model=p.base_model,
        epochs=int(p.epochs),
        sample=int(p.sample_size) if p.sample_size else None,
        seed=int(p.seed),
        threads=p.threads,
        model_name=p.model_name,
        languages=p.languages,
        train_path=p.train_path,
    )
    base_dir = Path(p.base_model).expanduser()
    if base_dir.is_dir():
        base_src, base_arg = str(base_dir.resolve()), CONTAINER_BASE_MODEL
    else:  # an alias or hub id: mount an empty directory so the mount list stays fixed
        base_src, base_arg = posixpath.join(work, "no_base_model"), p.base_model
        storage.fs.makedirs(base_src, exist_ok=True)
    if p.evaluate_only:
        action = "evaluate_only"
    elif _valid_candidate(candidate):
        action = "reuse"
    else:
        action = resolve_backend(p.trainer_backend)
    plan = {
        "action": action,
        "snapshot_id": snapshot_id,
        "work_dir": work,
        "candidate_dir": candidate,
        "job": job.__dict__,
        # The work dir is mounted, not the candidate dir: the trainer swaps its finished artifact into
        # --out with a rename, which a mount point cannot take (EBUSY), and its temp dir is a sibling.
        "docker": {
            "command": trainer_args(
                job, snapshot=CONTAINER_SNAPSHOT, out=posixpath.join(CONTAINER_OUT, "candidate"), base_model=base_arg
            ),
            "snapshot_src": host_path(job.snapshot_dir),
            "out_src": host_path(work),
            "base_model_src": host_path(base_src),
        },
    }
    if action == "docker":
        storage.fs.makedirs(candidate, exist_ok=True)  # a bind mount source must exist
    plan["params"] = json.loads(json.dumps(dict(params or {}), default=str))  # what the later stages ran with
    storage.write_json(posixpath.join(work, PLAN_FILE), plan)  # the CLI's `--run DIR` reads it back
    log.info("retrain plan: %s (work dir %s)", action, work)
    return plan


def run_params(plan: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Params a run was planned with, with the caller's overrides on top."""
    return {**(plan.get("params") or {}), **(overrides or {})}


def load_plan(run_dir: str, storage: Storage | None = None) -> dict[str, Any]:
    """The plan a run directory was made with, so a CLI step acts on exactly what the DAG did."""
    storage = _storage(storage)
    path = posixpath.join(str(run_dir), PLAN_FILE)
    if not storage.fs.exists(path):
        raise FileNotFoundError(
            f"{path} does not exist: --run takes a run directory made by `retrain` or monthly_retrain "
            "(runs/<snapshot_id>/<train_key>/ under NEWS_SIGNALS_HOME)"
        )
    return storage.read_json(path)


def _valid_candidate(path: str) -> bool:
    from news_signals.model.artifact import MANIFEST, verify_artifact

    if not (Path(path) / MANIFEST).is_file():
        return False
    try:
        verify_artifact(path)
    except Exception as exc:
        log.warning("existing candidate %s is unusable (%s); training again", path, exc)
        return False
    log.info("candidate %s from an earlier attempt of this run is complete; reusing it", path)
    return True


# ---- 4. train (local) ----------------------------------------------------------------------------
def train_local_stage(plan: dict[str, Any]) -> dict[str, Any]:
    from news_signals.retrain.trainer import TrainJob, run_local, train_timeout

    out = run_local(TrainJob(**plan["job"]), timeout_s=train_timeout().total_seconds())
    return {"candidate_dir": str(out)}


# ---- 5. evaluate ---------------------------------------------------------------------------------
def evaluate_stage(
    plan: dict[str, Any], params: dict[str, Any], storage: Storage | None = None
) -> dict[str, Any]:
    """Candidate, keywords and production (and the gold file) on the snapshot's test split."""
    from news_signals.labelling.keywords import KeywordLabeller
    from news_signals.model.evaluate import evaluate
    from news_signals.model.inference import ModelClassifier
    from news_signals.model.snapshot_io import read_split, truth_signals
    from news_signals.registry import get_registry

    p = RetrainParams.from_params(params)
    storage = _storage(storage)
    registry = get_registry(p.model_name)
    production = registry.production()
    if plan["action"] == "evaluate_only":
        version = p.model_version or (production.version if production else None)
        if version is None:
            raise ValueError("evaluate_only needs model_version (no model is in production to evaluate)")
        candidate_dir, candidate_ref = str(registry.download(int(version))), f"{registry.name}@{version}"
    else:
        candidate_dir, candidate_ref = plan["candidate_dir"], "candidate"
        serving_files(candidate_dir, storage)  # evaluated as it will serve; the fingerprint covers them
    from news_signals.registry.base import artifact_files, fingerprint

    fp = fingerprint(artifact_files(candidate_dir))
    test = read_split(storage.snapshot_dir(plan["snapshot_id"]), "test")
    texts, truth = test["text"].tolist(), truth_signals(test)
    classifiers: dict[str, Any] = {
        "candidate": ModelClassifier.from_dir(candidate_dir),
        "keywords": KeywordLabeller(),
    }
    if production is not None:
        classifiers["production"] = ModelClassifier.from_dir(registry.download(production.version))
    eval_dir = posixpath.join(plan["work_dir"], "eval")
    reports = {
        name: evaluate(
            clf,
            texts,
            truth,
            out_dir=posixpath.join(eval_dir, name),
            latency_samples=int(p.latency_samples),
            throughput_texts=max(64, int(p.latency_samples)),
        )
        for name, clf in classifiers.items()
    }
    gold = {}
    if p.gold_file:
        from news_signals.core.jsonl import read_gold

        g_texts, g_truth = read_gold(p.gold_file)
        gold = {
            name: evaluate(
                clf, g_texts, g_truth, measure_latency=False, out_dir=posixpath.join(eval_dir, f"gold_{name}")
            )
            for name, clf in classifiers.items()
        }
    heldout = _heldout_stage(p, classifiers, eval_dir, storage)
    evaluation = {
        "snapshot_id": plan["snapshot_id"],
        "test_rows": len(texts),
        "candidate_ref": candidate_ref,
        "candidate_dir": candidate_dir,
        "production_ref": production.ref if production else None,
        "candidate_fingerprint": fp,
        "same_as_production": bool(production and production.fingerprint == fp),
        "reports": reports,
        "gold": gold,
        "gold_file": p.gold_file,
        "heldout": heldout,
    }
    path = posixpath.join(plan["work_dir"], "evaluation.json")
    storage.write_json(path, evaluation)
    summary = {name: round(float(r["macro_f1"]), 4) for name, r in reports.items()}
    log.info("macro-F1 on %s test rows: %s", len(texts), summary)
    human = {name: round(float(r["macro_f1"]), 4) for name, r in (heldout or {}).get("reports", {}).items()}
    if human:
        log.info("macro-F1 on %s held-out human-labelled rows: %s", heldout["rows"], human)
    else:
        log.warning("no held-out human labels: the gate falls back to agreement with bootstrap labels")
    return {
        "evaluation_path": path,
        "agreement_macro_f1": summary,
        "heldout_macro_f1": human,
        "production": evaluation["production_ref"],
    }


def _heldout_stage(
    p: RetrainParams, classifiers: dict[str, Any], eval_dir: str, storage: Storage
) -> dict[str, Any] | None:
    """The classifiers on the held-out human labels, with paired intervals (``retrain.heldout``)."""
    from news_signals.retrain.heldout import heldout_reports, load_heldout, presence

    held = load_heldout(storage)
    if held is None:
        return None
    predictions = {name: presence(clf.classify_texts(held.texts)) for name, clf in classifiers.items()}
    teacher = _llm_teacher(p)
    if teacher is not None:  # the gate table compares the candidate with the LLM that taught it
        predictions["llm"] = presence(teacher.classify_texts(held.texts))
    reports = heldout_reports(
        predictions,
        held,
        min_rows=int(p.heldout_min_rows),
        samples=int(p.bootstrap_samples),
        seed=int(p.seed),
    )
    if teacher is not None:
        reports["llm"] = {k: v for k, v in teacher.summary().items() if k != "api_key"}
    storage.write_json(posixpath.join(eval_dir, "heldout.json"), reports)
    return reports


def _llm_teacher(p: RetrainParams) -> Any:
    """The LLM labeller when the snapshot used it and it answers now (its cache makes this cheap), else None."""
    if p.labeller != "llm":
        return None
    from news_signals.labelling.llm import LLMNotConfigured, LLMUnavailable, snapshot_labeller

    try:
        teacher = snapshot_labeller()
    except (LLMUnavailable, LLMNotConfigured) as exc:
        log.warning("the LLM labeller is not scored on the held-out labels: %s", exc)
        return None
    return teacher


# ---- 6. gate -------------------------------------------------------------------------------------
def gate_stage(
    plan: dict[str, Any], params: dict[str, Any], storage: Storage | None = None
) -> dict[str, Any]:
    from news_signals.retrain.gate import decide

    p = RetrainParams.from_params(params)
    storage = _storage(storage)
    evaluation = storage.read_json(posixpath.join(plan["work_dir"], "evaluation.json"))
    reports = evaluation["reports"]
    decision = decide(
        reports["candidate"],
        reports["keywords"],
        reports.get("production"),
        GateThresholds.from_mapping(p.gate),
        gold=(evaluation.get("gold") or {}).get("candidate"),
        heldout=evaluation.get("heldout"),
        force_promote=bool(p.force_promote),
        reason=p.reason,
        candidate_ref=evaluation["candidate_ref"],
        production_ref=evaluation["production_ref"],
        same_as_production=bool(evaluation.get("same_as_production")),
    )
    gate = {
        **decision.to_dict(),
        "snapshot_id": plan["snapshot_id"],
        "evaluate_only": plan["action"] == "evaluate_only",
    }
    path = posixpath.join(plan["work_dir"], "gate.json")
    storage.write_json(path, gate)
    log.info("promotion gate\n%s", decision.table())
    return {
        "promote": decision.promote,
        "decision": decision.decision,
        "forced": decision.forced,
        "failed_rules": decision.failed,
        "gate_path": path,
        "table": decision.table(),
    }


def after_gate(plan: dict[str, Any], decision: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The task(s) the gate branches to: nothing for evaluate_only, keep, promote, or ask a person first."""
    if plan["action"] == "evaluate_only":
        return []
    if not decision["promote"]:
        return ["register_only"]
    return ["approve_promotion"] if approval_required(params) else ["register_and_promote"]


def approval_required(params: dict[str, Any]) -> bool:
    """Param ``require_approval`` when set, else ``NEWS_SIGNALS_REQUIRE_APPROVAL`` (default false)."""
    p = RetrainParams.from_params(params)
    if p.require_approval is not None:
        return bool(p.require_approval)
    from news_signals.core.config import Settings

    return Settings().require_approval


# ---- 7. register ---------------------------------------------------------------------------------
def serving_files(candidate_dir: str, storage: Storage) -> dict[str, Any]:
    """The candidate's ONNX files and int8 check (``model.export``), checked on the held-out human
    texts too; built once into the artifact, before it is registered. Returns the int8 check."""
    from news_signals.model.export import prepare_for_serving
    from news_signals.retrain.heldout import load_heldout

    return prepare_for_serving(candidate_dir, heldout=load_heldout(storage))


def register_stage(
    plan: dict[str, Any],
    params: dict[str, Any],
    promote: bool,
    storage: Storage | None = None,
    approval: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register the candidate (always) and move production only when the gate said promote.

    ``approval``: a person's answer from the approval step (approved, by, at, timed_out); it is
    recorded in the version's gate record and, when approved, names who promoted.
    """
    from news_signals.registry import get_registry

    p = RetrainParams.from_params(params)
    storage = _storage(storage)
    evaluation = storage.read_json(posixpath.join(plan["work_dir"], "evaluation.json"))
    gate = storage.read_json(posixpath.join(plan["work_dir"], "gate.json"))
    if promote and not gate.get("promote"):
        raise RuntimeError(
            f"register_and_promote ran but {plan['work_dir']}/gate.json says keep; refusing to promote"
        )
    metrics = {**evaluation["reports"]["candidate"], "snapshot_id": plan["snapshot_id"]}
    metrics.pop("classifier", None)
    if evaluation.get("gold"):
        metrics["gold"] = evaluation["gold"].get("candidate")
    heldout = evaluation.get("heldout") or {}
    if heldout.get("reports", {}).get("candidate"):
        cand = heldout["reports"]["candidate"]
        metrics["heldout"] = {
            "macro_f1": cand["macro_f1"],
            "rows": heldout["rows"],
            "gated_categories": heldout["gated_categories"],
            "per_category": {c: m["f1"] for c, m in cand["categories"].items()},
            "keywords_macro_f1": heldout["reports"]["keywords"]["macro_f1"],
            "intervals": heldout.get("intervals", {}),
        }
    if approval is not None:
        gate = {**gate, "approval": approval}
        if promote and not approval.get("approved"):
            raise RuntimeError("register_and_promote ran but the approval says reject; refusing to promote")
    serving_files(plan["candidate_dir"], storage)  # built once: a no-op when evaluate built them
    registry = get_registry(p.model_name)
    job = plan["job"]
    mv = registry.register(
        plan["candidate_dir"],
        metrics,
        gate=gate,
        description=f"snapshot {plan['snapshot_id']}; base {job['base_model']}; epochs {job['epochs']}; gate {gate['decision']}",
    )
    promoted = False
    if promote:
        current = registry.production()
        if current is not None and current.version == mv.version:
            log.info("%s is already production; nothing to move", mv.ref)
        else:
            reason = gate.get("reason") or "passed the promotion gate"
            by = "promotion gate"
            if approval is not None:
                by = approval.get("by") or "unknown approver"
                reason = f"{reason}; approved by {by}"
            registry.promote(mv.version, reason, by=by)
            promoted = True
    prod = registry.production()
    log.info("registered %s; promoted: %s; production: %s", mv.ref, promoted, prod.ref if prod else "none")
    return {
        "version": mv.version,
        "name": mv.name,
        "promoted": promoted,
        "production": prod.version if prod else None,
    }


# ---- rollback (Param rollback_to: the manual path in the Airflow UI) ----------------------------
def rollback_stage(params: dict[str, Any], by: str) -> dict[str, Any]:
    """Move production back to ``rollback_to`` (a version that served before), recorded with who and why."""
    from news_signals.registry import get_registry

    p = RetrainParams.from_params(params)
    if p.rollback_to is None:
        raise ValueError("rollback_stage needs the Param rollback_to (the version production goes back to)")
    registry = get_registry(p.model_name)
    before = registry.production()
    mv = registry.rollback(int(p.rollback_to), p.reason, by)
    log.info("rolled %s back from %s to %s (by %s: %s)", registry.name, before.ref if before else None, mv.ref, by, p.reason)
    return {"name": mv.name, "production": mv.version, "previous": before.version if before else None, "by": by}
