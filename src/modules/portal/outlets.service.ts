import type { Executor } from '../../db/database.js';
import { AppError, type ErrorCode } from '../../http/errors.js';
import type { Actor } from '../audit/audit.service.js';
import {
  createDevice,
  createManager,
  createOutlet,
  notifyCacheChange,
} from '../merchants/merchants.service.js';
import { runAudited } from './portal.audit.js';

// Outlets, POS devices and cashiers (the `managers` table) of a merchant. Every change is audited
// and announced on the cache channel as `context:<merchantId>`: the integration API caches which
// POS contexts are valid and drops them on that notification (sent when the transaction commits).
//
// Deleting: something referenced by purchases or refunds is kept (the history names it), so DELETE
// answers 409 `conflict`; rename it instead. Devices and cashiers of a deleted outlet stay, detached.

/** An outlet as the portal shows it. */
export interface OutletView {
  id: string;
  name: string;
  address: string | null;
  createdAt: Date;
}

/** A device or cashier as the portal shows it. */
export interface PosMemberView {
  id: string;
  name: string;
  outletId: string | null;
  createdAt: Date;
}

/** The two kinds of things attached to outlets: tills and the people at them. */
export type PosMemberKind = 'device' | 'cashier';

const MEMBER = {
  device: { table: 'devices', column: 'device_id', notFound: 'device_not_found' },
  cashier: { table: 'managers', column: 'manager_id', notFound: 'manager_not_found' },
} as const;

async function announce(db: Executor, merchantId: string): Promise<void> {
  await notifyCacheChange(db, `context:${merchantId}`);
}

function notFound(code: ErrorCode, what: string): AppError {
  return new AppError(code, `${what} not found`);
}

async function assertOutlet(db: Executor, merchantId: string, outletId: string | null | undefined) {
  if (!outletId) return;
  const found = await db
    .selectFrom('outlets')
    .select('id')
    .where('id', '=', outletId)
    .where('merchant_id', '=', merchantId)
    .executeTakeFirst();
  if (!found) throw new AppError('outlet_not_found', 'outletId: outlet not found', { field: 'outletId' });
}

/** Whether purchases or refunds name the entity (then it cannot be deleted). */
async function isReferenced(
  db: Executor,
  column: 'outlet_id' | 'device_id' | 'manager_id',
  id: string,
): Promise<boolean> {
  const [purchase, refund] = await Promise.all([
    db.selectFrom('purchases').select('id').where(column, '=', id).limit(1).executeTakeFirst(),
    db.selectFrom('refunds').select('id').where(column, '=', id).limit(1).executeTakeFirst(),
  ]);
  return purchase !== undefined || refund !== undefined;
}

/** A merchant's outlets, by name. */
export function listOutlets(db: Executor, merchantId: string): Promise<OutletView[]> {
  return db
    .selectFrom('outlets')
    .select(['id', 'name', 'address', 'created_at as createdAt'])
    .where('merchant_id', '=', merchantId)
    .orderBy('name')
    .orderBy('id')
    .execute();
}

function selectOutlet(db: Executor, merchantId: string, outletId: string, lock = false) {
  const query = db
    .selectFrom('outlets')
    .select(['id', 'name', 'address', 'created_at as createdAt'])
    .where('id', '=', outletId)
    .where('merchant_id', '=', merchantId);
  return (lock ? query.forUpdate() : query).executeTakeFirst();
}

/** Adds an outlet. */
export function addOutlet(
  db: Executor,
  options: { merchantId: string; name: string; address?: string | null; actor: Actor },
): Promise<OutletView> {
  const { merchantId } = options;
  return runAudited(
    db,
    { actor: options.actor, merchantId, action: 'outlet.create', entityType: 'outlet' },
    async (trx) => {
      const { id } = await createOutlet(trx, {
        merchantId,
        name: options.name,
        address: options.address ?? undefined,
      });
      const outlet = await selectOutlet(trx, merchantId, id);
      if (!outlet) throw notFound('outlet_not_found', 'Outlet');
      await announce(trx, merchantId);
      return { result: outlet, entityId: id, after: outlet };
    },
  );
}

/** Renames an outlet or changes its address. */
export function updateOutlet(
  db: Executor,
  options: { merchantId: string; outletId: string; name?: string; address?: string | null; actor: Actor },
): Promise<OutletView> {
  const { merchantId, outletId } = options;
  return runAudited(
    db,
    { actor: options.actor, merchantId, action: 'outlet.update', entityType: 'outlet' },
    async (trx) => {
      const before = await selectOutlet(trx, merchantId, outletId, true);
      if (!before) throw notFound('outlet_not_found', 'Outlet');
      await trx
        .updateTable('outlets')
        .set({ name: options.name, address: options.address })
        .where('id', '=', outletId)
        .execute();
      const after = await selectOutlet(trx, merchantId, outletId);
      if (!after) throw notFound('outlet_not_found', 'Outlet');
      await announce(trx, merchantId);
      return { result: after, entityId: outletId, before, after };
    },
  );
}

/** Deletes an outlet no purchase or refund names; 409 `conflict` otherwise. */
export function deleteOutlet(
  db: Executor,
  options: { merchantId: string; outletId: string; actor: Actor },
): Promise<void> {
  const { merchantId, outletId } = options;
  return runAudited(
    db,
    { actor: options.actor, merchantId, action: 'outlet.delete', entityType: 'outlet' },
    async (trx) => {
      const before = await selectOutlet(trx, merchantId, outletId, true);
      if (!before) throw notFound('outlet_not_found', 'Outlet');
      if (await isReferenced(trx, 'outlet_id', outletId)) {
        throw new AppError(
          'conflict',
          'This outlet has purchases or refunds and cannot be deleted; rename it instead',
        );
      }
      await trx.deleteFrom('outlets').where('id', '=', outletId).execute();
      await announce(trx, merchantId);
      return { result: undefined, entityId: outletId, before };
    },
  );
}

function selectMember(db: Executor, kind: PosMemberKind, merchantId: string, id: string, lock = false) {
  const query = db
    .selectFrom(MEMBER[kind].table)
    .select(['id', 'name', 'outlet_id as outletId', 'created_at as createdAt'])
    .where('id', '=', id)
    .where('merchant_id', '=', merchantId);
  return (lock ? query.forUpdate() : query).executeTakeFirst();
}

/** A merchant's devices or cashiers, by name. */
export function listPosMembers(
  db: Executor,
  options: { merchantId: string; kind: PosMemberKind },
): Promise<PosMemberView[]> {
  return db
    .selectFrom(MEMBER[options.kind].table)
    .select(['id', 'name', 'outlet_id as outletId', 'created_at as createdAt'])
    .where('merchant_id', '=', options.merchantId)
    .orderBy('name')
    .orderBy('id')
    .execute();
}

/** Adds a device or cashier, optionally attached to one of the merchant's outlets. */
export function addPosMember(
  db: Executor,
  options: { merchantId: string; kind: PosMemberKind; name: string; outletId?: string | null; actor: Actor },
): Promise<PosMemberView> {
  const { merchantId, kind } = options;
  return runAudited(
    db,
    { actor: options.actor, merchantId, action: `${kind}.create`, entityType: kind },
    async (trx) => {
      await assertOutlet(trx, merchantId, options.outletId);
      const create = kind === 'device' ? createDevice : createManager;
      const { id } = await create(trx, {
        merchantId,
        name: options.name,
        outletId: options.outletId ?? undefined,
      });
      const member = await selectMember(trx, kind, merchantId, id);
      if (!member) throw notFound(MEMBER[kind].notFound, kind);
      await announce(trx, merchantId);
      return { result: member, entityId: id, after: member };
    },
  );
}

/** Renames a device or cashier or moves it to another outlet (null detaches it). */
export function updatePosMember(
  db: Executor,
  options: {
    merchantId: string;
    kind: PosMemberKind;
    id: string;
    name?: string;
    outletId?: string | null;
    actor: Actor;
  },
): Promise<PosMemberView> {
  const { merchantId, kind, id } = options;
  const what = kind === 'device' ? 'Device' : 'Cashier';
  return runAudited(
    db,
    { actor: options.actor, merchantId, action: `${kind}.update`, entityType: kind },
    async (trx) => {
      const before = await selectMember(trx, kind, merchantId, id, true);
      if (!before) throw notFound(MEMBER[kind].notFound, what);
      await assertOutlet(trx, merchantId, options.outletId);
      await trx
        .updateTable(MEMBER[kind].table)
        .set({ name: options.name, outlet_id: options.outletId })
        .where('id', '=', id)
        .execute();
      const after = await selectMember(trx, kind, merchantId, id);
      if (!after) throw notFound(MEMBER[kind].notFound, what);
      await announce(trx, merchantId);
      return { result: after, entityId: id, before, after };
    },
  );
}

/** Deletes a device or cashier no purchase or refund names; 409 `conflict` otherwise. */
export function deletePosMember(
  db: Executor,
  options: { merchantId: string; kind: PosMemberKind; id: string; actor: Actor },
): Promise<void> {
  const { merchantId, kind, id } = options;
  const what = kind === 'device' ? 'Device' : 'Cashier';
  return runAudited(
    db,
    { actor: options.actor, merchantId, action: `${kind}.delete`, entityType: kind },
    async (trx) => {
      const before = await selectMember(trx, kind, merchantId, id, true);
      if (!before) throw notFound(MEMBER[kind].notFound, what);
      if (await isReferenced(trx, MEMBER[kind].column, id)) {
        throw new AppError(
          'conflict',
          `This ${kind} has purchases or refunds and cannot be deleted; rename it instead`,
        );
      }
      await trx.deleteFrom(MEMBER[kind].table).where('id', '=', id).execute();
      await announce(trx, merchantId);
      return { result: undefined, entityId: id, before };
    },
  );
}
