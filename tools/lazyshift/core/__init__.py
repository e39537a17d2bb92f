"""The core: canonical document, source normalisers, mapping, guarded write, stores.

Nothing here knows about modes, the CLI, Jenkins or Ansible.
"""
