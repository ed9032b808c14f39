"""The web dashboard (`gasworks web`): a board of tasks, the slots with live log tails, the merge
queue, task pages and charts, each page with a JSON twin under /api/.

Needs the `web` extra (starlette, uvicorn); nothing is imported here, so `import gasworks`
works without it.
"""
