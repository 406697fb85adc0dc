-- Web analytics: visitors' sessions, the pages they view and the events they trigger.
CREATE TABLE web.users
(
    user_id UInt32 COMMENT 'User number',
    email String COMMENT 'Login email address',
    plan LowCardinality(String) COMMENT 'Subscription plan: free, pro or enterprise',
    signed_up_at DateTime COMMENT 'When the user signed up'
)
ENGINE = MergeTree
ORDER BY user_id
COMMENT 'Registered users of the product';

CREATE TABLE web.sessions
(
    session_id String COMMENT 'Session identifier',
    user_id Nullable(UInt32) COMMENT 'The logged-in user; NULL for anonymous visitors',
    started_at DateTime COMMENT 'When the session started',
    device LowCardinality(String) COMMENT 'desktop, mobile or tablet',
    browser LowCardinality(String) COMMENT 'Browser family',
    country LowCardinality(String) COMMENT 'Visitor country',
    source LowCardinality(String) COMMENT 'Traffic source: google, direct, newsletter or facebook',
    duration_seconds UInt32 COMMENT 'How long the session lasted, in seconds'
)
ENGINE = MergeTree
ORDER BY (started_at, session_id)
COMMENT 'Visits to the website';

CREATE TABLE web.page_views
(
    id UInt64 COMMENT 'Page view number',
    session_id String COMMENT 'The session the view belongs to',
    url String COMMENT 'Path of the page viewed',
    viewed_at DateTime COMMENT 'When the page was shown',
    load_time_ms UInt32 COMMENT 'Page load time in milliseconds'
)
ENGINE = MergeTree
ORDER BY (viewed_at, id)
COMMENT 'Every page shown to a visitor';

CREATE TABLE web.events
(
    id UInt64 COMMENT 'Event number',
    session_id String COMMENT 'The session the event happened in',
    event_type LowCardinality(String) COMMENT 'click, add_to_cart, signup or purchase',
    occurred_at DateTime COMMENT 'When the event happened',
    value Float64 COMMENT 'Purchase value in EUR; 0 for other events'
)
ENGINE = MergeTree
ORDER BY (occurred_at, id)
COMMENT 'Tracked interactions';
