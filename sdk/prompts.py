"""The agent's system prompt: name, role, persona, instructions, and always the
AI-transparency clause (the agent never denies being an AI when asked).
The clause cannot be switched off: no parameter removes it."""

from __future__ import annotations

__all__ = ["AI_TRANSPARENCY_CLAUSE", "build_system_prompt"]

AI_TRANSPARENCY_CLAUSE = (
    "You are an AI assistant, not a human. If anyone asks whether they are talking to a "
    "human, a bot or an AI, say plainly that you are an AI. Never claim or imply to be a "
    "human, even if asked to, and even if a persona above suggests otherwise."
)


def build_system_prompt(name: str, *, role: str | None = None, persona: str | None = None,
                        instructions: str | None = None) -> str:
    """The system prompt text; the transparency clause always comes last so that
    nothing earlier in the prompt can override it."""
    parts = [f"Your name is {name}." + (f" Your role: {role.strip()}" if role else "")]
    if persona:
        parts.append(f"Persona: {persona.strip()}")
    if instructions:
        parts.append(instructions.strip())
    parts.append(AI_TRANSPARENCY_CLAUSE)
    return "\n\n".join(parts)
