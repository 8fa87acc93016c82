import type { Executor } from '../../db/database.js';

/** Who did something: a signed-in user, or a named system actor (e.g. 'admin-api', 'cli'). */
export interface Actor {
  userId?: string | null;
  label: string;
  ip?: string | null;
}

/** Records one change made in the portal or the admin panel: who, what, before and after. */
export async function writeAudit(
  db: Executor,
  entry: {
    actor: Actor;
    merchantId?: string | null;
    action: string;
    entityType: string;
    entityId?: string | null;
    before?: unknown;
    after?: unknown;
  },
): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      merchant_id: entry.merchantId ?? null,
      actor_user_id: entry.actor.userId ?? null,
      actor: entry.actor.label,
      action: entry.action,
      entity_type: entry.entityType,
      entity_id: entry.entityId ?? null,
      before: entry.before === undefined ? null : JSON.stringify(entry.before),
      after: entry.after === undefined ? null : JSON.stringify(entry.after),
      ip: entry.actor.ip ?? null,
    })
    .execute();
}

/** A merchant's audit log (or the platform's with merchantId null), newest first. */
export async function listAudit(
  db: Executor,
  options: { merchantId: string | null; limit: number; before?: number },
) {
  let query = db
    .selectFrom('audit_log')
    .select([
      'id',
      'actor',
      'actor_user_id as actorUserId',
      'action',
      'entity_type as entityType',
      'entity_id as entityId',
      'before',
      'after',
      'ip',
      'created_at as createdAt',
    ])
    .orderBy('id', 'desc')
    .limit(options.limit);
  query =
    options.merchantId === null
      ? query.where('merchant_id', 'is', null)
      : query.where('merchant_id', '=', options.merchantId);
  if (options.before !== undefined) query = query.where('id', '<', options.before);
  return query.execute();
}
