import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import {
  Badge,
  Button,
  Card,
  ConfirmDialog,
  EmptyState,
  ErrorState,
  Loading,
  Modal,
  PageHeader,
  TextField,
  useDebounced,
} from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { IdChip } from '../ui/IdChip';
import { adminApi, type MerchantRow } from './api';

/** Merchants with their usage; create one with its owner; suspend and activate. */
export function MerchantsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const [q, setQ] = useState('');
  const query = useDebounced(q.trim(), 300);
  const merchants = useQuery({
    queryKey: ['merchants', query],
    queryFn: () => adminApi.get<{ items: MerchantRow[]; total: number }>('/merchants', { q: query }),
    placeholderData: keepPreviousData,
  });
  const [isCreating, setCreating] = useState(false);
  const [changing, setChanging] = useState<MerchantRow | null>(null);
  const setStatus = useAction(
    (input: { id: string; status: string }) =>
      adminApi.patch(`/merchants/${input.id}`, { status: input.status }),
    { invalidate: [['merchants']], success: t('common.saved'), onSuccess: () => setChanging(null) },
  );
  const columns: Array<Column<MerchantRow>> = [
    {
      key: 'name',
      header: t('merchants.merchant'),
      primary: true,
      render: (m) => (
        <div className="row" style={{ gap: 8 }}>
          <span>{m.name}</span>
          <IdChip id={m.id} />
        </div>
      ),
    },
    {
      key: 'status',
      header: t('common.status'),
      render: (m) =>
        m.status === 'active' ? (
          <Badge tone="success">{t('merchants.active')}</Badge>
        ) : (
          <Badge tone="danger">{t('merchants.suspended')}</Badge>
        ),
    },
    {
      key: 'customers',
      header: t('merchants.customers'),
      numeric: true,
      render: (m) => i18n.num(m.usage.customers),
    },
    {
      key: 'purchases',
      header: t('merchants.purchases30d'),
      numeric: true,
      render: (m) => i18n.num(m.usage.purchases30d),
    },
    {
      key: 'revenue',
      header: t('merchants.revenue30d'),
      numeric: true,
      render: (m) => i18n.money(m.usage.revenue30d),
    },
    { key: 'keys', header: t('merchants.apiKeys'), numeric: true, render: (m) => i18n.num(m.usage.apiKeys) },
    {
      key: 'hooks',
      header: t('merchants.webhooks'),
      numeric: true,
      render: (m) => i18n.num(m.usage.webhookEndpoints),
    },
    { key: 'created', header: t('common.created'), render: (m) => i18n.date(m.createdAt) },
    {
      key: 'actions',
      header: '',
      actions: true,
      render: (m) =>
        m.status === 'active' ? (
          <Button size="sm" variant="danger" onClick={() => setChanging(m)}>
            {t('merchants.suspend')}
          </Button>
        ) : (
          <Button
            size="sm"
            busy={setStatus.isPending}
            onClick={() => setStatus.mutate({ id: m.id, status: 'active' })}
          >
            {t('merchants.activate')}
          </Button>
        ),
    },
  ];
  const data = merchants.data;
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('merchants.title')}
        subtitle={data ? t('merchants.count', { n: data.total }) : t('merchants.subtitle')}
        actions={
          <Button variant="primary" icon="plus" onClick={() => setCreating(true)}>
            {t('merchants.create')}
          </Button>
        }
      />
      <Card padded={false}>
        <div className="card-body" style={{ paddingBottom: 16 }}>
          <TextField
            label={t('merchants.search')}
            type="search"
            value={q}
            onChange={setQ}
            placeholder={t('merchants.searchPlaceholder')}
          />
        </div>
        {merchants.isError ? (
          <ErrorState error={merchants.error} onRetry={() => merchants.refetch()} />
        ) : !data ? (
          <Loading />
        ) : data.items.length === 0 ? (
          <EmptyState icon="merchants" title={t('merchants.empty')} />
        ) : (
          <DataTable columns={columns} rows={data.items} rowKey={(m) => m.id} />
        )}
      </Card>
      {isCreating ? <CreateMerchantDialog onClose={() => setCreating(false)} /> : null}
      {changing ? (
        <ConfirmDialog
          title={t('merchants.suspendTitle')}
          text={t('merchants.suspendText', { name: changing.name })}
          confirmLabel={t('merchants.suspend')}
          busy={setStatus.isPending}
          onConfirm={() => setStatus.mutate({ id: changing.id, status: 'suspended' })}
          onCancel={() => setChanging(null)}
        />
      ) : null}
    </div>
  );
}

function CreateMerchantDialog({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const create = useAction(
    () => adminApi.post('/merchants', { name: name.trim(), owner: { email: email.trim(), password } }),
    { invalidate: [['merchants']], success: t('merchants.created'), onSuccess: onClose },
  );
  const isValid = name.trim() !== '' && /.+@.+/.test(email) && password.length >= 8;
  return (
    <Modal
      title={t('merchants.create')}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t('common.cancel')}</Button>
          <Button
            variant="primary"
            busy={create.isPending}
            disabled={!isValid}
            onClick={() => create.mutate()}
          >
            {t('merchants.createSubmit')}
          </Button>
        </>
      }
    >
      <div className="stack">
        <TextField label={t('merchants.name')} value={name} onChange={setName} autoFocus />
        <TextField label={t('merchants.ownerEmail')} type="email" value={email} onChange={setEmail} />
        <TextField
          label={t('merchants.ownerPassword')}
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={setPassword}
          hint={t('users.passwordHint')}
          error={password && password.length < 8 ? t('users.passwordShort') : undefined}
        />
      </div>
    </Modal>
  );
}
