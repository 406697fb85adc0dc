-- Customer support, PostgreSQL: the same tables as clickhouse.sql, with declared foreign keys.
CREATE TABLE agents (
    id integer PRIMARY KEY,
    name text NOT NULL,
    team text NOT NULL,
    hired_on date NOT NULL
);
COMMENT ON TABLE agents IS 'Support staff';
COMMENT ON COLUMN agents.id IS 'Agent number';
COMMENT ON COLUMN agents.name IS 'Full name';
COMMENT ON COLUMN agents.team IS 'billing, technical or sales';
COMMENT ON COLUMN agents.hired_on IS 'First working day';

CREATE TABLE tickets (
    id integer PRIMARY KEY,
    agent_id integer REFERENCES agents (id),
    customer_email text NOT NULL,
    subject text NOT NULL,
    created_at timestamp NOT NULL,
    closed_at timestamp,
    priority text NOT NULL,
    status text NOT NULL,
    channel text NOT NULL,
    first_response_minutes integer NOT NULL
);
COMMENT ON TABLE tickets IS 'Customer support requests';
COMMENT ON COLUMN tickets.id IS 'Ticket number';
COMMENT ON COLUMN tickets.agent_id IS 'The assigned agent; NULL while unassigned';
COMMENT ON COLUMN tickets.customer_email IS 'Who raised the ticket';
COMMENT ON COLUMN tickets.subject IS 'First line of the request';
COMMENT ON COLUMN tickets.created_at IS 'When the ticket was raised';
COMMENT ON COLUMN tickets.closed_at IS 'When the ticket was closed; NULL until then';
COMMENT ON COLUMN tickets.priority IS 'low, medium, high or urgent';
COMMENT ON COLUMN tickets.status IS 'open, pending, solved or closed';
COMMENT ON COLUMN tickets.channel IS 'email, chat or phone';
COMMENT ON COLUMN tickets.first_response_minutes IS 'Minutes until the first reply from an agent';

CREATE TABLE ratings (
    id integer PRIMARY KEY,
    ticket_id integer NOT NULL REFERENCES tickets (id),
    score smallint NOT NULL,
    rated_at timestamp NOT NULL
);
COMMENT ON TABLE ratings IS 'Satisfaction ratings that customers gave';
COMMENT ON COLUMN ratings.id IS 'Rating number';
COMMENT ON COLUMN ratings.ticket_id IS 'The rated ticket';
COMMENT ON COLUMN ratings.score IS 'Customer satisfaction score from 1 (poor) to 5 (great)';
COMMENT ON COLUMN ratings.rated_at IS 'When the customer gave the rating';
