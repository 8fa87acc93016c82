import { useState } from 'react';
import { manageableRoles, type Role, type StaffRole } from '../../../src/modules/auth/permissions';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import { useResource } from '../lib/resource';
import { useSession } from '../lib/useSession';
import { Badge, Card, PageHeader, RowActions, SelectField, TextField } from '../ui/components';
import type { Column } from '../ui/DataTable';
import {
  AddButton,
  FormDialog,
  MIN_PASSWORD_LENGTH,
  NewPasswordField,
  ResourceConfirm,
  ResourceTable,
} from '../ui/resource';
import { type PortalUser, portalApi } from './api';
import { useCan } from './permissions';

/** Staff accounts and their roles. */
export function UsersPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const session = useSession(portalApi);
  const canWrite = useCan('users:write');
  const myRole = (session?.user.role ?? 'cashier') as Role;
  const assignable = manageableRoles(myRole);
  const users = useResource<PortalUser>({
    queryKey: ['users'],
    queryFn: () => portalApi.get<{ items: PortalUser[] }>('/users'),
    confirm: (u) => portalApi.delete(`/users/${u.id}`),
    confirmed: t('users.removed'),
  });
  const roleLabel = (role: string) => t(`role.${role}` as 'role.owner');
  const canManage = (user: PortalUser) =>
    canWrite && user.id !== session?.user.id && assignable.includes(user.role as StaffRole);
  const columns: Array<Column<PortalUser>> = [
    {
      key: 'user',
      header: t('users.user'),
      primary: true,
      render: (u) => (
        <div>
          <div>{u.name || u.email}</div>
          {u.name ? <div className="small muted">{u.email}</div> : null}
        </div>
      ),
    },
    {
      key: 'role',
      header: t('users.role'),
      render: (u) => <Badge tone={u.role === 'owner' ? 'info' : 'default'}>{roleLabel(u.role)}</Badge>,
    },
    {
      key: 'status',
      header: t('common.status'),
      render: (u) =>
        u.disabled ? (
          <Badge tone="danger">{t('users.disabled')}</Badge>
        ) : (
          <Badge tone="success">{t('users.active')}</Badge>
        ),
    },
    {
      key: 'login',
      header: t('users.lastLogin'),
      render: (u) =>
        u.lastLoginAt ? i18n.dateTime(u.lastLoginAt) : <span className="muted">{t('users.never')}</span>,
    },
    {
      key: 'actions',
      header: '',
      actions: true,
      render: (u) =>
        canManage(u) ? (
          <RowActions
            onEdit={() => users.edit(u)}
            onDelete={() => users.ask(u)}
            deleteLabel={t('users.remove')}
          />
        ) : u.id === session?.user.id ? (
          <span className="small muted">{t('users.you')}</span>
        ) : null,
    },
  ];
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('users.title')}
        subtitle={t('users.subtitle')}
        actions={
          <AddButton canWrite={canWrite} label={t('users.invite')} onClick={() => users.edit('new')} />
        }
      />
      <Card padded={false}>
        <ResourceTable
          resource={users}
          columns={columns}
          empty={{ icon: 'users', title: t('users.empty') }}
        />
      </Card>
      <Card title={t('users.rolesTitle')}>
        <dl className="dl">
          {(['owner', 'admin', 'manager', 'cashier'] as const).map((role) => (
            <div key={role} style={{ display: 'contents' }}>
              <dt>
                <strong>{roleLabel(role)}</strong>
              </dt>
              <dd>{t(`role.${role}.about`)}</dd>
            </div>
          ))}
        </dl>
      </Card>
      {users.editing ? <UserDialog user={users.edited} roles={assignable} onClose={users.closeEdit} /> : null}
      <ResourceConfirm
        resource={users}
        title={t('users.removeTitle')}
        text={(u) => t('users.removeText', { email: u.email })}
        confirmLabel={t('users.remove')}
      />
    </div>
  );
}

function UserDialog({
  user,
  roles,
  onClose,
}: {
  user: PortalUser | null;
  roles: StaffRole[];
  onClose: () => void;
}) {
  const { t } = useI18n();
  const [email, setEmail] = useState(user?.email ?? '');
  const [name, setName] = useState(user?.name ?? '');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<string>(user?.role ?? 'cashier');
  const [isDisabled, setDisabled] = useState(Boolean(user?.disabled));
  const save = useAction(
    () =>
      user
        ? portalApi.patch(`/users/${user.id}`, { role, name: name.trim() || null, disabled: isDisabled })
        : portalApi.post('/users', {
            email: email.trim(),
            password,
            role,
            ...(name.trim() ? { name: name.trim() } : {}),
          }),
    { invalidate: [['users']], success: t('common.saved'), onSuccess: onClose },
  );
  const isValid = user ? true : /.+@.+/.test(email) && password.length >= MIN_PASSWORD_LENGTH;
  return (
    <FormDialog
      title={user ? t('users.editTitle') : t('users.invite')}
      onClose={onClose}
      busy={save.isPending}
      canSubmit={isValid}
      onSubmit={() => save.mutate()}
    >
      <TextField
        label={t('auth.email')}
        type="email"
        value={email}
        onChange={setEmail}
        disabled={Boolean(user)}
        autoFocus={!user}
      />
      <TextField label={t('users.name')} value={name} onChange={setName} />
      <SelectField
        label={t('users.role')}
        value={role}
        onChange={setRole}
        options={roles.map((r) => ({ value: r, label: t(`role.${r}`) }))}
      />
      {user ? null : <NewPasswordField label={t('auth.password')} value={password} onChange={setPassword} />}
      {user ? (
        <label className="checkbox">
          <input type="checkbox" checked={isDisabled} onChange={(e) => setDisabled(e.target.checked)} />
          {t('users.disableAccount')}
        </label>
      ) : null}
    </FormDialog>
  );
}
