"""Libraries the template's tests share: no tests here. helpers (bakes, venvs, ports), namespace_stack (the
stack in a private network namespace, as root), engine (the stack on a real Docker engine)."""
