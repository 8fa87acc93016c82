/** Roles of merchant staff, from most to least powerful; operators run the platform. */
export type StaffRole = 'owner' | 'admin' | 'manager' | 'cashier';
export type Role = StaffRole | 'operator';

/**
 * What each staff role may do in the portal, enforced on the server for every route.
 * owner: everything. admin: everything but owners' accounts. manager: day-to-day work with
 * customers and reports. cashier: looks customers and their history up.
 */
export const PERMISSIONS = {
  'dashboard:read': ['owner', 'admin', 'manager'],
  'programme:read': ['owner', 'admin', 'manager'],
  'programme:write': ['owner', 'admin'],
  'merchant:write': ['owner', 'admin'],
  'campaigns:read': ['owner', 'admin', 'manager'],
  'campaigns:write': ['owner', 'admin'],
  'outlets:read': ['owner', 'admin', 'manager', 'cashier'],
  'outlets:write': ['owner', 'admin'],
  'apikeys:read': ['owner', 'admin'],
  'apikeys:write': ['owner', 'admin'],
  'customers:read': ['owner', 'admin', 'manager', 'cashier'],
  'customers:adjust': ['owner', 'admin', 'manager'],
  'customers:write': ['owner', 'admin', 'manager'],
  'transactions:read': ['owner', 'admin', 'manager', 'cashier'],
  'transactions:export': ['owner', 'admin', 'manager'],
  'webhooks:read': ['owner', 'admin'],
  'webhooks:write': ['owner', 'admin'],
  'telegram:write': ['owner', 'admin'],
  'users:read': ['owner', 'admin'],
  'users:write': ['owner', 'admin'],
  'audit:read': ['owner', 'admin'],
} as const satisfies Record<string, readonly StaffRole[]>;

export type Permission = keyof typeof PERMISSIONS;

/** Whether a role has a permission. */
export function can(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly string[]).includes(role);
}

/** Roles a user of `role` may assign or manage (admins cannot touch owners). */
export function manageableRoles(role: Role): StaffRole[] {
  if (role === 'owner') return ['owner', 'admin', 'manager', 'cashier'];
  if (role === 'admin') return ['admin', 'manager', 'cashier'];
  return [];
}
