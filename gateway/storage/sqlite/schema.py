"""The versioned schema. Each entry of MIGRATIONS is applied once, in order, at start;
``PRAGMA user_version`` records how far a database file has come."""

MIGRATIONS: list[str] = [
    # 1: the gateway
    """
    CREATE TABLE workspaces (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
        label TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE audiences (
        id INTEGER PRIMARY KEY,
        workspace_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        source_task_id INTEGER,
        size INTEGER NOT NULL DEFAULT 0,
        ready INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX audiences_ws ON audiences(workspace_id, id);
    -- kind: 0 ok, 1 empty, 2 invalid, 3 duplicate
    CREATE TABLE audience_members (
        audience_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        raw TEXT,
        e164 TEXT,
        kind INTEGER NOT NULL,
        PRIMARY KEY (audience_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        workspace_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        platform TEXT NOT NULL,
        sms_type TEXT NOT NULL,
        signature TEXT NOT NULL,
        content TEXT NOT NULL,
        content_summary TEXT NOT NULL,
        audience_id INTEGER NOT NULL,
        audience_name TEXT NOT NULL,
        send_type TEXT NOT NULL,
        send_at REAL,
        sub_activities TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        moderation_due_at REAL,
        parts INTEGER NOT NULL,
        encoding TEXT NOT NULL,
        audience_size INTEGER NOT NULL DEFAULT 0,
        sent INTEGER NOT NULL DEFAULT 0,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        skipped TEXT NOT NULL DEFAULT '{}',
        segments INTEGER NOT NULL DEFAULT 0,
        late_receipts INTEGER NOT NULL DEFAULT 0,
        duplicate_receipts INTEGER NOT NULL DEFAULT 0,
        accepted INTEGER NOT NULL DEFAULT 0,
        cursor INTEGER NOT NULL DEFAULT -1,
        dispatch_started_at REAL,
        dispatch_done_at REAL,
        completed_at REAL,
        details_expire_at REAL,
        details_purged INTEGER NOT NULL DEFAULT 0,
        UNIQUE (workspace_id, name)
    );
    CREATE INDEX tasks_status ON tasks(status);
    -- result: 0 pending, 1 succeeded, 2 failed
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        task_id INTEGER NOT NULL,
        number TEXT NOT NULL,
        parts INTEGER NOT NULL,
        result INTEGER NOT NULL,
        platform_id TEXT,
        submitted_at REAL,
        receipt_at REAL,
        delivered_mask INTEGER NOT NULL DEFAULT 0,
        failed_mask INTEGER NOT NULL DEFAULT 0,
        reasons TEXT,
        late INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_task_result ON messages(task_id, result);
    CREATE INDEX messages_platform_id ON messages(platform_id);
    CREATE TABLE unmatched_receipts (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        platform_id TEXT NOT NULL,
        part INTEGER,
        status TEXT NOT NULL,
        code TEXT,
        message TEXT,
        at REAL NOT NULL,
        received_at REAL NOT NULL,
        matched INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX unmatched_pid ON unmatched_receipts(platform_id) WHERE matched = 0;
    """,
    # 2: the in-process simulated carrier keeps its state beside the gateway's
    """
    CREATE TABLE sim_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE sim_messages (
        msg_id TEXT PRIMARY KEY,
        task_ref TEXT NOT NULL,
        number TEXT NOT NULL,
        parts INTEGER NOT NULL,
        submitted_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        code TEXT
    ) WITHOUT ROWID;
    CREATE INDEX sim_messages_task ON sim_messages(task_ref);
    CREATE TABLE sim_receipts (
        id INTEGER PRIMARY KEY,
        msg_id TEXT NOT NULL,
        part INTEGER,
        status TEXT NOT NULL,
        code TEXT,
        due_at REAL NOT NULL,
        duplicate INTEGER NOT NULL DEFAULT 0,
        task_ref TEXT NOT NULL
    );
    CREATE INDEX sim_receipts_due ON sim_receipts(due_at, id);
    CREATE INDEX sim_receipts_task ON sim_receipts(task_ref, msg_id);
    """,
    # 3: service state that must survive a restart (the virtual clock's instant)
    """
    CREATE TABLE service_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 4: the simulated carrier's ground truth: submission latency and the number rule behind each
    # decision; receipts swallowed by an outage, and when each receipt was actually emitted
    """
    ALTER TABLE sim_messages ADD COLUMN latency REAL NOT NULL DEFAULT 0;
    ALTER TABLE sim_messages ADD COLUMN rule TEXT;
    ALTER TABLE sim_receipts ADD COLUMN swallowed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sim_receipts ADD COLUMN emitted_at REAL;
    """,
    # 5: the carrier logs each emission batch (how far, at what service time) instead of stamping
    # every receipt: ground truth derives each receipt's emitted_at from this log
    """
    CREATE TABLE sim_emissions (
        id INTEGER PRIMARY KEY,
        up_to_due REAL NOT NULL,
        up_to_id INTEGER NOT NULL,
        emitted_at REAL NOT NULL
    );
    """,
    # 6: when a task's last number got its final result (its completion time on a jumped clock)
    """
    ALTER TABLE tasks ADD COLUMN last_result_at REAL;
    """,
    # 7: lean carrier tables. A message keeps its planned receipts as one JSON column and is keyed
    # by (task, id), so it is one b-tree; the emission queue is one b-tree keyed by (due_at, id)
    # and holds only receipts that will be emitted. Two index updates fewer per number.
    """
    CREATE TABLE sim_messages_v7 (
        task_ref INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        number TEXT NOT NULL,
        parts INTEGER NOT NULL,
        submitted_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        code TEXT,
        latency REAL NOT NULL DEFAULT 0,
        rule TEXT,
        plan TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (task_ref, msg_id)
    ) WITHOUT ROWID;
    INSERT INTO sim_messages_v7
        SELECT CAST(m.task_ref AS INTEGER), m.msg_id, m.number, m.parts, m.submitted_at, m.outcome, m.code, m.latency, m.rule,
               COALESCE((SELECT json_group_array(json_array(r.id, r.part, r.status, r.code, r.due_at, r.duplicate, r.swallowed))
                         FROM (SELECT * FROM sim_receipts r2 WHERE r2.task_ref = m.task_ref AND r2.msg_id = m.msg_id
                               ORDER BY r2.due_at, r2.id) AS r), '[]')
        FROM sim_messages m;
    CREATE TABLE sim_queue (
        due_at REAL NOT NULL,
        id INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        part INTEGER,
        status TEXT NOT NULL,
        code TEXT,
        PRIMARY KEY (due_at, id)
    ) WITHOUT ROWID;
    INSERT INTO sim_queue SELECT due_at, id, msg_id, part, status, code FROM sim_receipts WHERE swallowed = 0;
    INSERT OR REPLACE INTO sim_state(key, value) SELECT 'next_receipt_id', COALESCE(MAX(id), 0) + 1 FROM sim_receipts;
    DROP TABLE sim_receipts;
    DROP TABLE sim_messages;
    ALTER TABLE sim_messages_v7 RENAME TO sim_messages;
    """,
    # 8: a receipt that delivers a number touches no index. The index on (task_id, result) moved
    # every number's entry when its result changed (0.9 µs of the 2.7 µs a receipt's UPDATE cost,
    # measured on 200,000 rows); now the task's numbers are found by task_id, and the unsettled
    # ones (pending or failed, the pages one asks for by result) by a partial index that a
    # succeeded number only leaves. Queries that want it say ``result <> 1`` in so many words:
    # SQLite uses a partial index only for a WHERE clause that names its condition.
    """
    DROP INDEX messages_task_result;
    CREATE INDEX messages_task ON messages(task_id);
    CREATE INDEX messages_unsettled ON messages(task_id) WHERE result <> 1;
    """,
    # 9: trust between workspaces. Task ids are never handed out twice (AUTOINCREMENT: a deleted
    # task's id stays retired, so a bookmark or an export never names someone else's task).
    # Audience names are unique per workspace among audiences not deleted (earlier duplicates are
    # renamed "name (#id)"). A receipt kept aside remembers the workspace whose token posted it
    # (NULL: pushed by the platform itself), so it is matched and listed only there. Tokens get
    # an id to list and revoke them by, and an admin flag for service-wide controls; tokens that
    # `smslab serve` printed before this are admin tokens, as the single-user path needs.
    """
    CREATE TABLE tasks_v9 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workspace_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        platform TEXT NOT NULL,
        sms_type TEXT NOT NULL,
        signature TEXT NOT NULL,
        content TEXT NOT NULL,
        content_summary TEXT NOT NULL,
        audience_id INTEGER NOT NULL,
        audience_name TEXT NOT NULL,
        send_type TEXT NOT NULL,
        send_at REAL,
        sub_activities TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        moderation_due_at REAL,
        parts INTEGER NOT NULL,
        encoding TEXT NOT NULL,
        audience_size INTEGER NOT NULL DEFAULT 0,
        sent INTEGER NOT NULL DEFAULT 0,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        skipped TEXT NOT NULL DEFAULT '{}',
        segments INTEGER NOT NULL DEFAULT 0,
        late_receipts INTEGER NOT NULL DEFAULT 0,
        duplicate_receipts INTEGER NOT NULL DEFAULT 0,
        accepted INTEGER NOT NULL DEFAULT 0,
        cursor INTEGER NOT NULL DEFAULT -1,
        dispatch_started_at REAL,
        dispatch_done_at REAL,
        completed_at REAL,
        details_expire_at REAL,
        details_purged INTEGER NOT NULL DEFAULT 0,
        last_result_at REAL,
        UNIQUE (workspace_id, name)
    );
    INSERT INTO tasks_v9 SELECT id, workspace_id, name, platform, sms_type, signature, content, content_summary,
        audience_id, audience_name, send_type, send_at, sub_activities, status, status_reason, created_at, updated_at,
        moderation_due_at, parts, encoding, audience_size, sent, succeeded, failed, skipped, segments, late_receipts,
        duplicate_receipts, accepted, cursor, dispatch_started_at, dispatch_done_at, completed_at, details_expire_at,
        details_purged, last_result_at FROM tasks;
    DROP TABLE tasks;
    ALTER TABLE tasks_v9 RENAME TO tasks;
    CREATE INDEX tasks_status ON tasks(status);

    UPDATE audiences SET name = name || ' (#' || id || ')' WHERE deleted = 0 AND id NOT IN (
        SELECT MIN(id) FROM audiences WHERE deleted = 0 GROUP BY workspace_id, name);
    CREATE UNIQUE INDEX audiences_name ON audiences(workspace_id, name) WHERE deleted = 0;

    ALTER TABLE unmatched_receipts ADD COLUMN workspace_id INTEGER;
    CREATE INDEX unmatched_ws ON unmatched_receipts(workspace_id, id) WHERE matched = 0;

    CREATE TABLE tokens_v9 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hash TEXT NOT NULL UNIQUE,
        workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
        label TEXT,
        admin INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    INSERT INTO tokens_v9(hash, workspace_id, label, admin, created_at)
        SELECT hash, workspace_id, label, label = 'serve', created_at FROM tokens ORDER BY created_at, hash;
    DROP TABLE tokens;
    ALTER TABLE tokens_v9 RENAME TO tokens;
    """,
    # 10: each platform plugin's own namespaced store (gateway/storage/sqlite/platform_store.py), instead of tables
    # of its own in the gateway's database
    """
    CREATE TABLE platform_store (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    """,
    # 11: mobile-originated messages (replies) and each workspace's opt-out list (gateway/inbound.py).
    # A reply belongs to a workspace, or to none when its platform could not tell (NULL: only
    # admin tokens see it). A platform's id for a reply is kept once: a platform that hands the
    # same reply over again (an SMSC resending a deliver_sm it saw no answer to) stores nothing
    # twice. An opt-out is one number of one workspace, added by a reply (``inbound_id``, the
    # keyword) or over the API. Pages: a workspace's replies newest first (``inbound_ws``), its
    # opt-outs in number order (the primary key), and the dispatcher's look-up of a batch's
    # numbers (the primary key too).
    """
    CREATE TABLE inbound_messages (
        id INTEGER PRIMARY KEY,
        workspace_id INTEGER,
        platform TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        at REAL NOT NULL,
        received_at REAL NOT NULL,
        platform_id TEXT,
        opted_out INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX inbound_ws ON inbound_messages(workspace_id, id);
    CREATE UNIQUE INDEX inbound_platform_id ON inbound_messages(platform, platform_id) WHERE platform_id IS NOT NULL;
    CREATE TABLE opt_outs (
        workspace_id INTEGER NOT NULL,
        number TEXT NOT NULL,
        source TEXT NOT NULL,
        inbound_id INTEGER,
        keyword TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (workspace_id, number)
    ) WITHOUT ROWID;
    """,
]
