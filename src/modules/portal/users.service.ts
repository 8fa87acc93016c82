import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Actor } from '../audit/audit.service.js';
import { createPortalUser } from '../auth/auth.service.js';
import { manageableRoles, type Role, type StaffRole } from '../auth/permissions.js';
import { runAudited } from './portal.audit.js';

// The merchant's staff accounts. Rules: an admin cannot create, change or remove owners, nor make
// anyone an owner (403); nobody removes or disables themselves, and a merchant always keeps one
// active owner: the last one cannot be removed, disabled or demoted (409). Disabling or removing a
// user ends their sessions at once (refresh tokens revoked; the portal re-reads the account on
// every request, so their access token stops working too).

/** The signed-in user making a change. */
export interface StaffManager {
  actor: Actor;
  userId: string;
  role: Role;
}

/** A staff account as the portal shows it (never the password hash). */
export interface StaffUserView {
  id: string;
  email: string;
  name: string | null;
  role: string;
  locale: string;
  disabled: boolean;
  lastLoginAt: Date | null;
  createdAt: Date;
}

function selectUsers(db: Executor, merchantId: string) {
  return db
    .selectFrom('portal_users')
    .select([
      'id',
      'email',
      'name',
      'role',
      'locale',
      sql<boolean>`disabled_at is not null`.as('disabled'),
      'last_login_at as lastLoginAt',
      'created_at as createdAt',
    ])
    .where('merchant_id', '=', merchantId);
}

/** The merchant's staff, by email. */
export function listStaffUsers(db: Executor, merchantId: string): Promise<StaffUserView[]> {
  return selectUsers(db, merchantId).orderBy('email').execute();
}

function assertManageable(by: StaffManager, role: string, what: string): void {
  if (!(manageableRoles(by.role) as string[]).includes(role)) {
    throw new AppError('forbidden', `Your role (${by.role}) may not ${what} a user with role ${role}`, {
      role,
    });
  }
}

/** Locks the merchant's owners and counts the active ones other than `exceptUserId`. */
async function otherActiveOwners(trx: Executor, merchantId: string, exceptUserId: string): Promise<number> {
  const owners = await trx
    .selectFrom('portal_users')
    .select(['id', 'disabled_at'])
    .where('merchant_id', '=', merchantId)
    .where('role', '=', 'owner')
    .orderBy('id')
    .forUpdate()
    .execute();
  return owners.filter((o) => o.id !== exceptUserId && o.disabled_at === null).length;
}

async function endSessions(trx: Executor, userId: string): Promise<void> {
  await trx
    .updateTable('refresh_tokens')
    .set({ revoked_at: new Date() })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute();
}

async function findUser(trx: Executor, merchantId: string, userId: string): Promise<StaffUserView> {
  const user = await selectUsers(trx, merchantId).where('id', '=', userId).executeTakeFirst();
  if (!user) throw new AppError('not_found', 'User not found');
  return user;
}

/** Creates a staff account of the merchant. */
export function addStaffUser(
  db: Executor,
  options: {
    by: StaffManager;
    merchantId: string;
    email: string;
    password: string;
    role: StaffRole;
    name?: string;
  },
): Promise<StaffUserView> {
  const { merchantId, by } = options;
  assertManageable(by, options.role, 'create');
  return runAudited(
    db,
    { actor: by.actor, merchantId, action: 'user.create', entityType: 'user' },
    async (trx) => {
      const created = await createPortalUser(trx, {
        merchantId,
        email: options.email,
        password: options.password,
        role: options.role,
        name: options.name ?? null,
      });
      const user = await findUser(trx, merchantId, created.id);
      return { result: user, entityId: user.id, after: user };
    },
  );
}

/** Changes a user's role, name or disabled state. */
export function changeStaffUser(
  db: Executor,
  options: {
    by: StaffManager;
    merchantId: string;
    userId: string;
    role?: StaffRole;
    name?: string | null;
    disabled?: boolean;
  },
): Promise<StaffUserView> {
  const { merchantId, userId, by } = options;
  return runAudited(
    db,
    { actor: by.actor, merchantId, action: 'user.update', entityType: 'user' },
    async (trx) => {
      const before = await findUser(trx, merchantId, userId);
      assertManageable(by, before.role, 'change');
      if (options.role !== undefined) assertManageable(by, options.role, 'assign the role to');
      if (options.disabled === true && userId === by.userId) {
        throw new AppError('conflict', 'You cannot disable your own account');
      }
      const isLeavingOwners =
        before.role === 'owner' &&
        !before.disabled &&
        ((options.role !== undefined && options.role !== 'owner') || options.disabled === true);
      if (isLeavingOwners && (await otherActiveOwners(trx, merchantId, userId)) === 0) {
        throw new AppError(
          'conflict',
          'The last owner cannot be demoted or disabled; make someone else owner first',
        );
      }
      await trx
        .updateTable('portal_users')
        .set({
          role: options.role,
          name: options.name,
          disabled_at: options.disabled === undefined ? undefined : options.disabled ? new Date() : null,
        })
        .where('id', '=', userId)
        .execute();
      if (options.disabled === true) await endSessions(trx, userId);
      const after = await findUser(trx, merchantId, userId);
      return { result: after, entityId: userId, before, after };
    },
  );
}

/** Removes a user (their audit entries stay, without the link to the account). */
export function removeStaffUser(
  db: Executor,
  options: { by: StaffManager; merchantId: string; userId: string },
): Promise<void> {
  const { merchantId, userId, by } = options;
  return runAudited(
    db,
    { actor: by.actor, merchantId, action: 'user.delete', entityType: 'user' },
    async (trx) => {
      const before = await findUser(trx, merchantId, userId);
      if (userId === by.userId) throw new AppError('conflict', 'You cannot remove your own account');
      assertManageable(by, before.role, 'remove');
      if (
        before.role === 'owner' &&
        !before.disabled &&
        (await otherActiveOwners(trx, merchantId, userId)) === 0
      ) {
        throw new AppError('conflict', 'The last owner cannot be removed; make someone else owner first');
      }
      await trx.deleteFrom('portal_users').where('id', '=', userId).execute();
      return { result: undefined, entityId: userId, before };
    },
  );
}
