import { QueryClientProvider, useQuery } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Navigate, Route, Routes } from 'react-router';
import { useI18n } from '../i18n';
import type { Session } from '../lib/api';
import { createQueryClient } from '../lib/query';
import { useSession } from '../lib/useSession';
import { EmptyState } from '../ui/components';
import { Icon } from '../ui/icons';
import { LoginPage } from '../ui/LoginPage';
import { Shell } from '../ui/Shell';
import { adminApi, type Switches } from './api';
import { MerchantsPage } from './Merchants';
import { OutboxPage } from './Outbox';
import { SwitchesPage } from './Switches';
import { SystemPage } from './System';

const queryClient = createQueryClient();

/** The operators' admin panel. */
export default function AdminApp() {
  const { t } = useI18n();
  const session = useSession(adminApi);
  useEffect(() => {
    if (!session) queryClient.clear();
  }, [session]);
  return (
    <QueryClientProvider client={queryClient}>
      {session ? (
        <AdminShell session={session} />
      ) : (
        <LoginPage client={adminApi} title={t('admin.product')} subtitle={t('admin.tagline')} />
      )}
    </QueryClientProvider>
  );
}

function ModeBanner() {
  const { t } = useI18n();
  const switches = useQuery({
    queryKey: ['switches'],
    queryFn: () => adminApi.get<Switches>('/switches'),
    refetchInterval: 10_000,
  });
  const data = switches.data;
  if (!data) return null;
  if (data.maintenance.enabled) {
    return (
      <div className="banner banner-danger" role="status">
        <Icon name="alert" /> {t('switches.maintenanceOn')}
      </div>
    );
  }
  if (data.readOnly.enabled) {
    return (
      <div className="banner banner-warning" role="status">
        <Icon name="alert" /> {t('switches.readOnlyOn')}
      </div>
    );
  }
  return null;
}

function AdminShell({ session }: { session: Session }) {
  const { t } = useI18n();
  return (
    <Shell
      product={t('admin.product')}
      subtitle={t('admin.tagline')}
      groups={[
        {
          items: [
            { to: '/admin/merchants', label: t('nav.merchants'), icon: 'merchants' },
            { to: '/admin/outbox', label: t('nav.outbox'), icon: 'outbox' },
            { to: '/admin/switches', label: t('nav.switches'), icon: 'switches' },
            { to: '/admin/system', label: t('nav.system'), icon: 'system' },
          ],
        },
      ]}
      userLabel={session.user.name || session.user.email}
      userHint={t('role.operator')}
      onLogout={() => void adminApi.logout()}
      banner={<ModeBanner />}
    >
      <Routes>
        <Route index element={<Navigate to="/admin/merchants" replace />} />
        <Route path="merchants" element={<MerchantsPage />} />
        <Route path="outbox" element={<OutboxPage />} />
        <Route path="switches" element={<SwitchesPage />} />
        <Route path="system" element={<SystemPage />} />
        <Route path="*" element={<EmptyState icon="alert" title={t('error.notFound')} />} />
      </Routes>
    </Shell>
  );
}
