"""Call recordings: policy, the Postgres registry, the files, retention."""
