"""Who is calling the API: Clerk session JWTs, org API keys, and the admin key.

Everything here turns an `Authorization` header into a `Principal` (an organization and who
acts for it) or an `AuthError`; routes never look at credentials themselves.
"""
