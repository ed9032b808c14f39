"""Speculative parallel gating (Zuul's dependent pipeline): with `gate_workers = N`, the refinery
gates up to N batches at once, each in a lane (an integration worktree) of its own and each on the
speculated result of those ahead of it: tip + batch 1, tip + batch 1 + batch 2, ... Results are
settled in queue order: a batch lands only by a compare-and-set of the target from the commit it
was stacked on to the exact commit that passed, so a failure (or a target that moved) invalidates
only what was stacked on it, which goes back to the queue to be gated again on the new tip. Every
lane is cleaned before it is stacked: nothing a rejected branch left reaches a later gate.

The policy (pre-gate or not, batch size and speculation depth) comes from the measured failure rate and
gate time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gasworks.config import Config
from gasworks.gate import Gated
from gasworks.merge_round import Landing, Lane, MergeRound, Refining
from gasworks.models import Merge, MergeStatus
from gasworks.store import Store

AUTO_WINDOW = 20          # recent gate results that size "auto" batches
ASSUMED_FAILURE = 0.1     # before any gate result is known
ASSUMED_PREGATED_FAILURE = 0.05  # the same for branches that passed a pre-gate
NEEDED_AT_LEAST = 0.25    # a speculative gate runs only while it is needed at least this often
SHORT_GATE_SECONDS = 0.1  # below this, stacking and landing cost more than a parallel gate saves
PREGATE_FROM = 0.1        # pregate = "auto": pre-gate when at least this share of branches fails ...
# ... or when a gate keeps less than this share of a core busy (it mostly waits). Low, because pre-gates that
# share the cores with each other (and with the agents) stretch a CPU-bound gate's wall time: measured in 8
# slots on 2 cores, a CPU-bound gate shows about 0.2, one that sleeps 0.05-0.07.
LIGHT_GATE_CPU = 0.1


@dataclass(frozen=True)
class Policy:
    batch: int  # branches gated together
    depth: int  # batches gated at once, each on those ahead
    why: str
    pregate: bool = False  # finished branches are gated in their slots before they are queued


def auto_batch_size(history: list[bool]) -> int:
    """About 0.5/p branches per gate run for a failure rate p, at most 8; 1 when p is above 0.2,
    where bisecting costs more runs than batching saves."""
    if not history:
        return 4
    failure_rate = history.count(False) / len(history)
    if failure_rate > 0.2:
        return 1
    return max(1, min(8, round(0.5 / failure_rate))) if failure_rate else 8


def choose_pregate(setting: bool | str, history: list[bool], pregate_history: list[bool],
                   gate_seconds: float | None, cpu_share: float | None = None) -> tuple[bool, str]:
    """pregate = "auto": pre-gate when at least PREGATE_FROM of the branches fail. A failure caught in
    a slot costs one gate run there, in parallel with the others; in the queue it fails a batch,
    costs bisecting runs and invalidates every batch stacked on it. Under that rate batches absorb
    most failures, and a pre-gate still pays when the gate keeps under LIGHT_GATE_CPU of a core busy
    (cpu_share, measured on the recent pre-gates): then every slot gates at once almost for free and
    the queue lands whole batches without bisecting; a CPU-bound one would take the cores from the
    queue's gates. The rate is the higher of the queue's and the pre-gates' recent ones: once
    branches are pre-gated the queue sees few failures, so its rate alone would turn pre-gating off."""
    if setting != "auto":
        return bool(setting), f"{'pre-gates' if setting else 'no pre-gate'} (pregate = {str(setting).lower()})"
    if gate_seconds is not None and gate_seconds < SHORT_GATE_SECONDS:
        return False, f"no pre-gate: gates under {SHORT_GATE_SECONDS:g} s fail as cheaply in the queue"
    rates = [h.count(False) / len(h) for h in (history, pregate_history) if h]
    rate = max(rates) if rates else ASSUMED_FAILURE
    seen = f"{rate:.0%} of branches fail" + ("" if rates else " (assumed: none measured yet)")
    if rate >= PREGATE_FROM:
        return True, f"pre-gates: {seen}, from {PREGATE_FROM:.0%} failures are caught cheaper in the slots"
    if cpu_share is not None and cpu_share < LIGHT_GATE_CPU:
        return True, (f"pre-gates: {seen}, but a gate keeps only {cpu_share:.0%} of a core busy, so every slot "
                      f"gates at once almost for free")
    light = "" if cpu_share is None else f" and a gate keeps {cpu_share:.0%} of a core busy"
    return False, f"no pre-gate: {seen}, under {PREGATE_FROM:.0%}{light}: the batches absorb them"


def choose_policy(history: list[bool], gate_seconds: float | None, workers: int, batch_setting: int | str,
                  pregated: bool | str = False, pregate_history: list[bool] | None = None,
                  cpu_share: float | None = None) -> Policy:
    """Pre-gate or not (choose_pregate, from `pregated`: the pregate setting); batch size from
    merge_batch_size ("auto": from the failure rate); depth: as many of the gate_workers as are likely
    to be needed, the k-th batch being needed only when the k-1 ahead of it pass, with probability
    (1 - P(batch fails))^(k-1). Before any result, branches that pass a pre-gate are assumed to fail
    rarely; branches no longer pre-gated are expected to fail as the recent pre-gates found."""
    pregate, pregate_why = choose_pregate(pregated, history, pregate_history or [], gate_seconds, cpu_share)
    if not pregate:  # what the pre-gates found is what the queue will see: more evidence, sooner
        history = history + (pregate_history or [])
    assumed = ASSUMED_PREGATED_FAILURE if pregate else ASSUMED_FAILURE
    rate = history.count(False) / len(history) if history else None
    seen = f"failure rate {rate:.0%} over the last {len(history)} results" if rate is not None else \
        f"no gate results yet (assumed failure rate {assumed:.0%}{', branches are pre-gated' if pregate else ''})"
    if batch_setting == "auto":
        batch = auto_batch_size(history) if history or not pregate else min(8, round(0.5 / assumed))
        batch_why = f"batches of {batch} (about 0.5/p, at most 8; 1 above 20%)"
    else:
        batch = int(batch_setting)
        batch_why = f"batches of {batch} (merge_batch_size)"
    p_batch = 1 - (1 - (assumed if rate is None else rate)) ** batch
    depth = 1
    while depth < workers and (1 - p_batch) ** depth >= NEEDED_AT_LEAST:
        depth += 1
    timing = f"gates take {gate_seconds:.1f} s" if gate_seconds is not None else "no gate timed yet"
    if workers == 1:
        depth_why = "1 deep (gate_workers = 1)"
    elif gate_seconds is not None and gate_seconds < SHORT_GATE_SECONDS:
        depth, depth_why = 1, f"1 deep: gates under {SHORT_GATE_SECONDS:g} s cost less than stacking them"
    else:
        limit = "every gate worker" if depth == workers else f"deeper ones are needed under {NEEDED_AT_LEAST:.0%}"
        depth_why = (f"{depth} deep of {workers} gate workers (the last is needed {(1 - p_batch) ** (depth - 1):.0%} "
                     f"of the time; {limit})")
    return Policy(batch, depth, f"{seen}, {timing}: {batch_why}, {depth_why}; {pregate_why}", pregate)


def policy_for(store: Store, config: Config) -> Policy:
    """The policy the refinery uses now, from the store's recent results (also for `gasworks merges`)."""
    recent = store.merges(statuses=[MergeStatus.LANDED.value, MergeStatus.GATE_FAILED.value], limit=AUTO_WINDOW)
    totals = store.gate_run_totals()
    seconds = totals["seconds"] / totals["runs"] if totals["runs"] else None
    pregates = store.pregate_totals(last=AUTO_WINDOW)
    pregated = [True] * int(pregates["runs"] - pregates["failed"]) + [False] * int(pregates["failed"])
    return choose_policy([m.status == MergeStatus.LANDED.value for m in recent], seconds, config.gate_workers,
                         config.merge_batch_size, pregated=config.pregate, pregate_history=pregated,
                         cpu_share=pregates["cpu_seconds"] / pregates["seconds"] if pregates["seconds"] else None)


@dataclass(frozen=True)
class Stack:
    lane: Lane
    base: str          # the commit it was stacked on: the tip, or the candidate ahead of it
    candidate: str     # the commit gated; the target moves to it, from base, if it passes
    applied: list[Merge]


class SpeculativeRound:
    def __init__(self, refinery: Refining, now: float, policy: Policy) -> None:
        self.r, self.now, self.policy = refinery, now, policy

    def run(self, queued: list[Merge]) -> None:
        tip = self.r.upstream.tip()
        admitted = MergeRound(self.r, self.now).admit(queued, tip)
        size = self.policy.batch
        batches = [admitted[i:i + size] for i in range(0, len(admitted), size)]
        stacks = self.stack(batches[:len(self.r.lanes)], tip)
        for late in batches[len(self.r.lanes):]:
            self.r.verdicts.requeue(late, "waits for a free gate worker")
        if stacks:
            self.settle(stacks, self.gate(stacks), tip)

    def stack(self, batches: list[list[Merge]], tip: str) -> list[Stack]:
        """Each batch on the one ahead, in its own lane."""
        stacks, base = [], tip
        for lane, batch in zip(self.r.lanes, batches):
            candidate, applied = MergeRound(self.r, self.now, lane).stack(batch, base)
            if not applied:
                continue
            stacks.append(Stack(lane, base, candidate, applied))
            base = candidate
        return stacks

    def gate(self, stacks: list[Stack]) -> list[Gated | None]:
        """Every lane's gate at once (threads: each gate is a process of its own)."""
        if not self.r.config.gate:
            return [None] * len(stacks)
        with ThreadPoolExecutor(max_workers=len(stacks), thread_name_prefix="gasworks-gate") as pool:
            return list(pool.map(lambda s: s.lane.gate.measure(f"{s.applied[0].id}"), stacks))

    def settle(self, stacks: list[Stack], gated: list[Gated | None], tip: str) -> None:
        """In queue order: land what passed on what landed; bisect a batch that failed on the real
        tip; send everything stacked on what did not land back to the queue."""
        landed_on: str | None = tip
        for stack, result in zip(stacks, gated):
            judged = MergeRound(self.r, self.now, stack.lane).judge(stack.applied, stack.base, stack.candidate,
                                                                     result)
            if self.r.aborting:
                self.r.verdicts.requeue(stack.applied, "the gate was stopped")
                continue
            if stack.base != landed_on:
                self.r.verdicts.requeue(stack.applied, "stacked on a branch that did not land: gated again")
                continue
            if judged.outcome == Landing.FAILED:
                MergeRound(self.r, self.now).settle(stack.applied, judged)
                landed_on = None
                continue
            landing = MergeRound(self.r, self.now, stack.lane).advance(stack.base, stack.candidate, stack.applied)
            landed_on = stack.candidate if landing == Landing.LANDED else None

