"""The only place that runs git: every submodule here is git, always argv lists, never a shell.

Callers import `gasworks.git` and call `git.run`, `git.rev_parse`, ...; the submodules group the
commands by what they act on. A submodule is imported when one of its names is first used, so a
command that needs one git call loads only that part.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported now: its function `history` shares the submodule's name, and importing a submodule binds that
# name on this package, so the function must be bound after it.
from gasworks.git.history import apply_patch, commit_message, export_tree, file_at, history, patch_between

if TYPE_CHECKING:
    from gasworks.git.changes import (
        changed_files,
        changed_paths,
        commit_all,
        commit_leftovers,
        diff,
        is_dirty,
        restore_paths,
        status_signature,
        take_file,
        tracked_paths,
    )
    from gasworks.git.command import (
        Tree,
        Where,
        has_identity,
        run,
        where,
    )
    from gasworks.git.merging import (
        conflict_markers,
        enclose,
        fast_forward,
        merge,
        merge_commit,
        merge_keeping_conflicts,
        rebase_onto,
        trial_merge,
    )
    from gasworks.git.refs import (
        branch_exists,
        branch_heads,
        branches,
        commits_between,
        current_branch,
        delete_branch,
        has_merge_commits,
        is_ancestor,
        merge_base,
        ref_exists,
        rev_parse,
        same_tree,
        set_ref,
        update_ref,
        valid_branch_name,
    )
    from gasworks.git.remote import (
        delete_remote_branch,
        fetch,
        has_remote,
        push,
        push_with_lease,
    )
    from gasworks.git.repository import (
        busy_branch,
        checkout_gitdirs,
        commit_paths,
        git_common_dir,
        init_repo,
        main_root,
        toplevel,
        unfinished,
        user_name,
    )
    from gasworks.git.worktree import (
        checkout_branch,
        checkout_tree,
        clean_checkout,
        clean_detach,
        detach_at,
        discard_changes,
        linked_tree,
        remove_worktree,
        repair,
        reset_to,
        restore_pointer,
        worktree_add,
        worktree_prune,
        worktrees,
        write_new,
    )

# In import order (a part imports only from the parts before it), so the first that has a name defines it.
_PARTS = ("command", "repository", "refs", "changes", "merging", "remote", "worktree")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for part in _PARTS:
            module = importlib.import_module(f"{__name__}.{part}")
            if name in vars(module):
                globals()[name] = value = vars(module)[name]
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "checkout_branch", "enclose", "merge_commit",
    "apply_patch", "commit_message", "export_tree", "file_at", "history", "patch_between",
    "branch_exists", "branch_heads", "branches", "busy_branch", "changed_files", "changed_paths", "checkout_gitdirs",
    "checkout_tree", "clean_checkout", "clean_detach", "commit_all", "commit_leftovers", "commit_paths",
    "commits_between", "conflict_markers", "current_branch", "delete_branch", "delete_remote_branch", "detach_at",
    "diff", "discard_changes", "fast_forward", "fetch", "git_common_dir", "has_identity", "has_merge_commits",
    "has_remote", "init_repo", "is_ancestor", "is_dirty", "linked_tree", "main_root", "merge", "merge_base",
    "merge_keeping_conflicts", "push", "push_with_lease", "rebase_onto", "ref_exists", "remove_worktree", "repair",
    "reset_to", "restore_paths", "restore_pointer", "rev_parse", "run", "same_tree", "set_ref", "status_signature",
    "take_file", "toplevel", "tracked_paths", "Tree", "trial_merge", "unfinished", "update_ref", "user_name",
    "valid_branch_name", "Where", "where", "worktree_add", "worktree_prune", "worktrees", "write_new",
]
