"""变更管理 Change control (第十条): request → assessment → verified backup → approval → apply in
the window → verify → revert on failure → outcome. Every step is a ``change_step`` row and an audit
event.

Light on purpose: import the submodules (``request``, ``kinds``, ``service``).
"""
