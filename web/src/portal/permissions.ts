import { can, type Permission, type Role } from '../../../src/modules/auth/permissions';
import { useSession } from '../lib/useSession';
import { portalApi } from './api';

/** Whether the signed-in staff member's role has a permission (the server enforces it too). */
export function useCan(permission: Permission): boolean {
  const session = useSession(portalApi);
  return session ? can(session.user.role as Role, permission) : false;
}
