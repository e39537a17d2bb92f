"""The local stack and the demo: servers as plain processes (stack.py), the main job walked
end to end on them (demo.py), and what the source's own log says the stores must hold
(expected.py)."""
