import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import { useResource } from '../lib/resource';
import { Badge, Button, Card, PageHeader, TextField, useDebounced } from '../ui/components';
import type { Column } from '../ui/DataTable';
import { IdChip } from '../ui/IdChip';
import {
  AddButton,
  FormDialog,
  MIN_PASSWORD_LENGTH,
  NewPasswordField,
  ResourceConfirm,
  ResourceTable,
} from '../ui/resource';
import { adminApi, type MerchantRow } from './api';

/** Merchants with their usage; create one with its owner; suspend and activate. */
export function MerchantsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const [q, setQ] = useState('');
  const query = useDebounced(q.trim(), 300);
  const merchants = useResource<MerchantRow, { items: MerchantRow[]; total: number }>({
    queryKey: ['merchants', query],
    queryFn: () => adminApi.get<{ items: MerchantRow[]; total: number }>('/merchants', { q: query }),
    keepPrevious: true,
    confirm: (m) => adminApi.patch(`/merchants/${m.id}`, { status: 'suspended' }),
    confirmed: t('common.saved'),
  });
  const activate = useAction((id: string) => adminApi.patch(`/merchants/${id}`, { status: 'active' }), {
    invalidate: [['merchants']],
    success: t('common.saved'),
  });
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
          <Button size="sm" variant="danger" onClick={() => merchants.ask(m)}>
            {t('merchants.suspend')}
          </Button>
        ) : (
          <Button size="sm" busy={activate.isPending} onClick={() => activate.mutate(m.id)}>
            {t('merchants.activate')}
          </Button>
        ),
    },
  ];
  const data = merchants.query.data;
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('merchants.title')}
        subtitle={data ? t('merchants.count', { n: data.total }) : t('merchants.subtitle')}
        actions={<AddButton canWrite label={t('merchants.create')} onClick={() => merchants.edit('new')} />}
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
        <ResourceTable
          resource={merchants}
          columns={columns}
          empty={{ icon: 'merchants', title: t('merchants.empty') }}
        />
      </Card>
      {merchants.editing ? <CreateMerchantDialog onClose={merchants.closeEdit} /> : null}
      <ResourceConfirm
        resource={merchants}
        title={t('merchants.suspendTitle')}
        text={(m) => t('merchants.suspendText', { name: m.name })}
        confirmLabel={t('merchants.suspend')}
      />
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
  const isValid = name.trim() !== '' && /.+@.+/.test(email) && password.length >= MIN_PASSWORD_LENGTH;
  return (
    <FormDialog
      title={t('merchants.create')}
      onClose={onClose}
      busy={create.isPending}
      canSubmit={isValid}
      submitLabel={t('merchants.createSubmit')}
      onSubmit={() => create.mutate()}
    >
      <TextField label={t('merchants.name')} value={name} onChange={setName} autoFocus />
      <TextField label={t('merchants.ownerEmail')} type="email" value={email} onChange={setEmail} />
      <NewPasswordField label={t('merchants.ownerPassword')} value={password} onChange={setPassword} />
    </FormDialog>
  );
}
