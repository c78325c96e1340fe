#!/bin/sh
# Daily logical backup of the compose deployment (docs/operations.md): pg_dump -Fc inside the timescaledb container
# (its pg_dump matches the server), a Redis snapshot, and the dumps older than KEEP_DAYS removed.
#
#   docker/backup.sh [BACKUP_DIR]          # default ./backups; cron: 15 2 * * * /srv/suho/docker/backup.sh /srv/backups
#
# Restore: docs/operations.md, "Restore" (db_setup first, then pg_restore between timescaledb_pre/post_restore).
set -eu

BACKUP_DIR="${1:-./backups}"
KEEP_DAYS="${KEEP_DAYS:-14}"
DATABASE="${SUHO_DATABASE:-suho}"
COMPOSE="docker compose -f $(dirname "$0")/compose.yaml"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$BACKUP_DIR"

# As the superuser: row-level security is forced on the tables' owner, so only a role that bypasses it dumps
# every tenant's rows (pg_dump refuses to dump a table partially).
$COMPOSE exec -T timescaledb pg_dump -U postgres -d "$DATABASE" --format=custom >"$BACKUP_DIR/suho_$STAMP.dump.part"
mv "$BACKUP_DIR/suho_$STAMP.dump.part" "$BACKUP_DIR/suho_$STAMP.dump"
$COMPOSE exec -T timescaledb pg_restore --list <"$BACKUP_DIR/suho_$STAMP.dump" >/dev/null  # readable

# Redis holds only caches and the Celery queue; a snapshot keeps queued tasks (seed §10.3: every 6 hours).
$COMPOSE exec -T redis redis-cli BGSAVE >/dev/null || echo "backup: redis BGSAVE failed" >&2

find "$BACKUP_DIR" -name 'suho_*.dump' -mtime +"$KEEP_DAYS" -delete
echo "backup: $BACKUP_DIR/suho_$STAMP.dump"
