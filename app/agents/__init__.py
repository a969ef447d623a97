"""Agents as a call finds them: which agent answers a phone number or a media stream, read from
the database into the profile the conversation engine runs (app.conversation.agent)."""
