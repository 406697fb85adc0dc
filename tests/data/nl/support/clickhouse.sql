-- Customer support: agents in teams handle tickets, which customers may rate once solved.
CREATE TABLE support.agents
(
    id UInt32 COMMENT 'Agent number',
    name String COMMENT 'Full name',
    team LowCardinality(String) COMMENT 'billing, technical or sales',
    hired_on Date COMMENT 'First working day'
)
ENGINE = MergeTree
ORDER BY id
COMMENT 'Support staff';

CREATE TABLE support.tickets
(
    id UInt32 COMMENT 'Ticket number',
    agent_id Nullable(UInt32) COMMENT 'The assigned agent; NULL while unassigned',
    customer_email String COMMENT 'Who raised the ticket',
    subject String COMMENT 'First line of the request',
    created_at DateTime COMMENT 'When the ticket was raised',
    closed_at Nullable(DateTime) COMMENT 'When the ticket was closed; NULL until then',
    priority LowCardinality(String) COMMENT 'low, medium, high or urgent',
    status LowCardinality(String) COMMENT 'open, pending, solved or closed',
    channel LowCardinality(String) COMMENT 'email, chat or phone',
    first_response_minutes UInt32 COMMENT 'Minutes until the first reply from an agent'
)
ENGINE = MergeTree
ORDER BY (created_at, id)
COMMENT 'Customer support requests';

CREATE TABLE support.ratings
(
    id UInt32 COMMENT 'Rating number',
    ticket_id UInt32 COMMENT 'The rated ticket',
    score UInt8 COMMENT 'Customer satisfaction score from 1 (poor) to 5 (great)',
    rated_at DateTime COMMENT 'When the customer gave the rating'
)
ENGINE = MergeTree
ORDER BY (rated_at, id)
COMMENT 'Satisfaction ratings that customers gave';
