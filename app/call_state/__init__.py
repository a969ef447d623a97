"""Call state every ingress replica shares (Redis, or in-process without REDIS_URL): which
replica holds each live call and how it goes, kept in step with the replica's calls."""
