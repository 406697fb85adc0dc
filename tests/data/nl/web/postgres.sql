-- Web analytics, PostgreSQL: the same tables as clickhouse.sql, with declared foreign keys.
CREATE TABLE users (
    user_id integer PRIMARY KEY,
    email text NOT NULL,
    plan text NOT NULL,
    signed_up_at timestamp NOT NULL
);
COMMENT ON TABLE users IS 'Registered users of the product';
COMMENT ON COLUMN users.user_id IS 'User number';
COMMENT ON COLUMN users.email IS 'Login email address';
COMMENT ON COLUMN users.plan IS 'Subscription plan: free, pro or enterprise';
COMMENT ON COLUMN users.signed_up_at IS 'When the user signed up';

CREATE TABLE sessions (
    session_id text PRIMARY KEY,
    user_id integer REFERENCES users (user_id),
    started_at timestamp NOT NULL,
    device text NOT NULL,
    browser text NOT NULL,
    country text NOT NULL,
    source text NOT NULL,
    duration_seconds integer NOT NULL
);
COMMENT ON TABLE sessions IS 'Visits to the website';
COMMENT ON COLUMN sessions.session_id IS 'Session identifier';
COMMENT ON COLUMN sessions.user_id IS 'The logged-in user; NULL for anonymous visitors';
COMMENT ON COLUMN sessions.started_at IS 'When the session started';
COMMENT ON COLUMN sessions.device IS 'desktop, mobile or tablet';
COMMENT ON COLUMN sessions.browser IS 'Browser family';
COMMENT ON COLUMN sessions.country IS 'Visitor country';
COMMENT ON COLUMN sessions.source IS 'Traffic source: google, direct, newsletter or facebook';
COMMENT ON COLUMN sessions.duration_seconds IS 'How long the session lasted, in seconds';

CREATE TABLE page_views (
    id bigint PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (session_id),
    url text NOT NULL,
    viewed_at timestamp NOT NULL,
    load_time_ms integer NOT NULL
);
COMMENT ON TABLE page_views IS 'Every page shown to a visitor';
COMMENT ON COLUMN page_views.id IS 'Page view number';
COMMENT ON COLUMN page_views.session_id IS 'The session the view belongs to';
COMMENT ON COLUMN page_views.url IS 'Path of the page viewed';
COMMENT ON COLUMN page_views.viewed_at IS 'When the page was shown';
COMMENT ON COLUMN page_views.load_time_ms IS 'Page load time in milliseconds';

CREATE TABLE events (
    id bigint PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (session_id),
    event_type text NOT NULL,
    occurred_at timestamp NOT NULL,
    value double precision NOT NULL
);
COMMENT ON TABLE events IS 'Tracked interactions';
COMMENT ON COLUMN events.id IS 'Event number';
COMMENT ON COLUMN events.session_id IS 'The session the event happened in';
COMMENT ON COLUMN events.event_type IS 'click, add_to_cart, signup or purchase';
COMMENT ON COLUMN events.occurred_at IS 'When the event happened';
COMMENT ON COLUMN events.value IS 'Purchase value in EUR; 0 for other events';
