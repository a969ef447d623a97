"""Conversations as stored, for calls and the playground alike: opening one, appending its
turns' messages in order, their costs, closing it, and reading its history back.

`store.ConversationStore` is the one place that writes these rows; `call_recorder` feeds it a
live call without making the call wait, and `costs` prices what a conversation used.
"""
