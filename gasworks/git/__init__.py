"""The only place that runs git: every submodule here is git, always argv lists, never a shell.

Callers import `gasworks.git` and call `git.run`, `git.rev_parse`, ...; the submodules group the
commands by what they act on."""

from __future__ import annotations

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
from gasworks.git.history import apply_patch, commit_message, export_tree, file_at, history, patch_between
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
