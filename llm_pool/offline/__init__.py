"""Everything that stands in for the outside world, so the system runs with no
provider keys: the scripted OpenAI-compatible provider (:mod:`.provider`, used by
the tests and ``pool provider``), the offline demo (:mod:`.demo`, ``pool demo``) and
the tools of its ``helpdesk`` agent (:mod:`.demo_tools`, named in
``config/agents.yaml``). Nothing in ``sdk/``, ``proxy/`` or ``worker/`` imports this.
"""
