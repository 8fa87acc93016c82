import { QueryClientProvider, useQuery } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Navigate, Route, Routes } from 'react-router';
import { can, type Permission, type Role } from '../../../src/modules/auth/permissions';
import { useI18n } from '../i18n';
import type { Session } from '../lib/api';
import { createQueryClient } from '../lib/query';
import { useSession } from '../lib/useSession';
import { EmptyState } from '../ui/components';
import { LoginPage } from '../ui/LoginPage';
import { type NavGroup, type NavItem, Shell } from '../ui/Shell';
import { ApiKeysPage } from './ApiKeys';
import { AuditPage } from './Audit';
import { type Me, portalApi } from './api';
import { CampaignsPage } from './Campaigns';
import { CustomerPage, CustomersPage } from './Customers';
import { DashboardPage } from './Dashboard';
import { OutletsPage } from './Outlets';
import { ProgrammePage } from './Programme';
import { TelegramPage } from './Telegram';
import { TransactionsPage } from './Transactions';
import { UsersPage } from './Users';
import { WebhooksPage } from './Webhooks';

const queryClient = createQueryClient();

/** The merchant portal: sign-in, then the pages the user's role may use. */
export default function PortalApp() {
  const { t } = useI18n();
  const session = useSession(portalApi);
  useEffect(() => {
    if (!session) queryClient.clear();
  }, [session]);
  return (
    <QueryClientProvider client={queryClient}>
      {session ? (
        <PortalShell session={session} />
      ) : (
        <LoginPage client={portalApi} title={t('portal.product')} subtitle={t('portal.tagline')} />
      )}
    </QueryClientProvider>
  );
}

interface PageDef extends NavItem {
  permission: Permission;
  path: string;
  element: React.ReactNode;
  group: 'main' | 'setup' | 'team';
}

function usePages(): PageDef[] {
  const { t } = useI18n();
  return [
    {
      path: 'dashboard',
      to: '/portal/dashboard',
      label: t('nav.dashboard'),
      icon: 'dashboard',
      permission: 'dashboard:read',
      element: <DashboardPage />,
      group: 'main',
    },
    {
      path: 'customers/*',
      to: '/portal/customers',
      label: t('nav.customers'),
      icon: 'customers',
      permission: 'customers:read',
      element: <CustomersRoutes />,
      group: 'main',
    },
    {
      path: 'transactions',
      to: '/portal/transactions',
      label: t('nav.transactions'),
      icon: 'transactions',
      permission: 'transactions:read',
      element: <TransactionsPage />,
      group: 'main',
    },
    {
      path: 'programme',
      to: '/portal/programme',
      label: t('nav.programme'),
      icon: 'programme',
      permission: 'programme:read',
      element: <ProgrammePage />,
      group: 'setup',
    },
    {
      path: 'campaigns',
      to: '/portal/campaigns',
      label: t('nav.campaigns'),
      icon: 'campaigns',
      permission: 'campaigns:read',
      element: <CampaignsPage />,
      group: 'setup',
    },
    {
      path: 'outlets',
      to: '/portal/outlets',
      label: t('nav.outlets'),
      icon: 'outlets',
      permission: 'outlets:read',
      element: <OutletsPage />,
      group: 'setup',
    },
    {
      path: 'api-keys',
      to: '/portal/api-keys',
      label: t('nav.apiKeys'),
      icon: 'key',
      permission: 'apikeys:read',
      element: <ApiKeysPage />,
      group: 'setup',
    },
    {
      path: 'webhooks',
      to: '/portal/webhooks',
      label: t('nav.webhooks'),
      icon: 'webhooks',
      permission: 'webhooks:read',
      element: <WebhooksPage />,
      group: 'setup',
    },
    {
      path: 'telegram',
      to: '/portal/telegram',
      label: t('nav.telegram'),
      icon: 'telegram',
      permission: 'telegram:write',
      element: <TelegramPage />,
      group: 'setup',
    },
    {
      path: 'users',
      to: '/portal/users',
      label: t('nav.users'),
      icon: 'users',
      permission: 'users:read',
      element: <UsersPage />,
      group: 'team',
    },
    {
      path: 'audit',
      to: '/portal/audit',
      label: t('nav.audit'),
      icon: 'audit',
      permission: 'audit:read',
      element: <AuditPage />,
      group: 'team',
    },
  ];
}

function CustomersRoutes() {
  return (
    <Routes>
      <Route index element={<CustomersPage />} />
      <Route path=":customerId" element={<CustomerPage />} />
    </Routes>
  );
}

function PortalShell({ session }: { session: Session }) {
  const { t } = useI18n();
  const role = session.user.role as Role;
  const me = useQuery({ queryKey: ['me'], queryFn: () => portalApi.get<Me>('/me') });
  const pages = usePages().filter((page) => can(role, page.permission));
  const groupLabels = { main: undefined, setup: t('nav.group.setup'), team: t('nav.group.team') };
  const groups: NavGroup[] = (['main', 'setup', 'team'] as const)
    .map((group) => ({ label: groupLabels[group], items: pages.filter((p) => p.group === group) }))
    .filter((group) => group.items.length > 0);
  const home = pages[0]?.to ?? '/portal/customers';
  return (
    <Shell
      product={t('portal.product')}
      subtitle={me.data?.merchantName ?? t('portal.tagline')}
      groups={groups}
      userLabel={session.user.name || session.user.email}
      userHint={t(`role.${role}` as 'role.owner')}
      onLogout={() => void portalApi.logout()}
    >
      <Routes>
        <Route index element={<Navigate to={home} replace />} />
        {pages.map((page) => (
          <Route key={page.path} path={page.path} element={page.element} />
        ))}
        <Route
          path="*"
          element={<EmptyState icon="alert" title={t('error.noAccess')} hint={t('error.noAccessHint')} />}
        />
      </Routes>
    </Shell>
  );
}
