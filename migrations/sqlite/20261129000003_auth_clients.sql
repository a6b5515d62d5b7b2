-- The OAuth 2.0 clients (SPEC §2), managed by `jobs-admin clients`. Not event-sourced: a
-- small registry read on every token request and every authenticated call. The secret is
-- kept only as an argon2id hash (PHC string); scopes and customers are JSON arrays.
CREATE TABLE auth_clients
(
    client_id    text PRIMARY KEY,
    name         text NOT NULL,
    scopes       text NOT NULL,
    customer_ids text NOT NULL,
    secret_hash  text NOT NULL,
    created_at   text NOT NULL,
    revoked_at   text
) STRICT;
