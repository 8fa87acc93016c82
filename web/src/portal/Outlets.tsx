import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import {
  Button,
  Card,
  ConfirmDialog,
  EmptyState,
  ErrorState,
  Loading,
  Modal,
  PageHeader,
  RowActions,
  SelectField,
  TextField,
} from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { IdChip } from '../ui/IdChip';
import { type Cashier, type Device, itemsOf, type Outlet, portalApi } from './api';
import { useCan } from './permissions';

type Tab = 'outlets' | 'devices' | 'cashiers';

/** Outlets, POS devices and cashiers: the ids a POS sends with every call. */
export function OutletsPage() {
  const { t } = useI18n();
  const [tab, setTab] = useState<Tab>('outlets');
  const tabs: Array<{ id: Tab; label: string }> = [
    { id: 'outlets', label: t('outlets.tabOutlets') },
    { id: 'devices', label: t('outlets.tabDevices') },
    { id: 'cashiers', label: t('outlets.tabCashiers') },
  ];
  return (
    <div className="stack-lg">
      <PageHeader title={t('outlets.title')} subtitle={t('outlets.subtitle')} />
      <div className="tabs" role="tablist">
        {tabs.map((item) => (
          <button
            key={item.id}
            type="button"
            role="tab"
            aria-selected={tab === item.id}
            onClick={() => setTab(item.id)}
          >
            {item.label}
          </button>
        ))}
      </div>
      {tab === 'outlets' ? <OutletList /> : <MemberList kind={tab} />}
    </div>
  );
}

function OutletList() {
  const i18n = useI18n();
  const { t } = i18n;
  const canWrite = useCan('outlets:write');
  const outlets = useQuery({
    queryKey: ['outlets'],
    queryFn: () => portalApi.get<{ items: Outlet[] }>('/outlets'),
  });
  const [editing, setEditing] = useState<Outlet | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Outlet | null>(null);
  const remove = useAction((id: string) => portalApi.delete(`/outlets/${id}`), {
    invalidate: [['outlets']],
    success: t('outlets.deleted'),
    onSuccess: () => setDeleting(null),
  });
  const columns: Array<Column<Outlet>> = [
    { key: 'name', header: t('common.name'), primary: true, render: (o) => o.name },
    {
      key: 'address',
      header: t('outlets.address'),
      render: (o) => o.address ?? <span className="muted">—</span>,
    },
    { key: 'id', header: t('common.id'), render: (o) => <IdChip id={o.id} /> },
    { key: 'created', header: t('common.created'), render: (o) => i18n.date(o.createdAt) },
  ];
  if (canWrite) {
    columns.push({
      key: 'actions',
      header: '',
      actions: true,
      render: (o) => <RowActions onEdit={() => setEditing(o)} onDelete={() => setDeleting(o)} />,
    });
  }
  const items = itemsOf(outlets.data);
  return (
    <Card
      padded={false}
      title={t('outlets.tabOutlets')}
      actions={
        canWrite ? (
          <Button variant="primary" size="sm" icon="plus" onClick={() => setEditing('new')}>
            {t('outlets.add')}
          </Button>
        ) : null
      }
    >
      {outlets.isError ? (
        <ErrorState error={outlets.error} onRetry={() => outlets.refetch()} />
      ) : outlets.isPending ? (
        <Loading />
      ) : items.length === 0 ? (
        <EmptyState icon="outlets" title={t('outlets.empty')} hint={t('outlets.emptyHint')} />
      ) : (
        <DataTable columns={columns} rows={items} rowKey={(o) => o.id} />
      )}
      {editing ? (
        <OutletDialog outlet={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title={t('outlets.deleteTitle')}
          text={t('outlets.deleteText', { name: deleting.name })}
          confirmLabel={t('common.delete')}
          busy={remove.isPending}
          onConfirm={() => remove.mutate(deleting.id)}
          onCancel={() => setDeleting(null)}
        />
      ) : null}
    </Card>
  );
}

function OutletDialog({ outlet, onClose }: { outlet: Outlet | null; onClose: () => void }) {
  const { t } = useI18n();
  const [name, setName] = useState(outlet?.name ?? '');
  const [address, setAddress] = useState(outlet?.address ?? '');
  const body = { name: name.trim(), address: address.trim() || null };
  const save = useAction(
    () => (outlet ? portalApi.patch(`/outlets/${outlet.id}`, body) : portalApi.post('/outlets', body)),
    { invalidate: [['outlets']], success: t('common.saved'), onSuccess: onClose },
  );
  return (
    <Modal
      title={outlet ? t('outlets.editTitle') : t('outlets.add')}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t('common.cancel')}</Button>
          <Button
            variant="primary"
            busy={save.isPending}
            disabled={!name.trim()}
            onClick={() => save.mutate()}
          >
            {t('common.save')}
          </Button>
        </>
      }
    >
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          if (name.trim()) save.mutate();
        }}
      >
        <TextField label={t('common.name')} value={name} onChange={setName} required autoFocus />
        <TextField label={t('outlets.address')} value={address} onChange={setAddress} />
      </form>
    </Modal>
  );
}

type Member = Device | Cashier;

function MemberList({ kind }: { kind: 'devices' | 'cashiers' }) {
  const i18n = useI18n();
  const { t } = i18n;
  const canWrite = useCan('outlets:write');
  const members = useQuery({
    queryKey: [kind],
    queryFn: () => portalApi.get<{ items: Member[] }>(`/${kind}`),
  });
  const outlets = useQuery({
    queryKey: ['outlets'],
    queryFn: () => portalApi.get<{ items: Outlet[] }>('/outlets'),
  });
  const outletName = (id: string | null) => itemsOf(outlets.data).find((o) => o.id === id)?.name;
  const [editing, setEditing] = useState<Member | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Member | null>(null);
  const remove = useAction((id: string) => portalApi.delete(`/${kind}/${id}`), {
    invalidate: [[kind]],
    success: t('outlets.deleted'),
    onSuccess: () => setDeleting(null),
  });
  const columns: Array<Column<Member>> = [
    { key: 'name', header: t('common.name'), primary: true, render: (m) => m.name },
    {
      key: 'outlet',
      header: t('outlets.outlet'),
      render: (m) => outletName(m.outletId) ?? <span className="muted">{t('outlets.anyOutlet')}</span>,
    },
    { key: 'id', header: t('common.id'), render: (m) => <IdChip id={m.id} /> },
    { key: 'created', header: t('common.created'), render: (m) => i18n.date(m.createdAt) },
  ];
  if (canWrite) {
    columns.push({
      key: 'actions',
      header: '',
      actions: true,
      render: (m) => <RowActions onEdit={() => setEditing(m)} onDelete={() => setDeleting(m)} />,
    });
  }
  const items = itemsOf(members.data);
  const title = kind === 'devices' ? t('outlets.tabDevices') : t('outlets.tabCashiers');
  return (
    <Card
      padded={false}
      title={title}
      subtitle={kind === 'devices' ? t('outlets.devicesHint') : t('outlets.cashiersHint')}
      actions={
        canWrite ? (
          <Button variant="primary" size="sm" icon="plus" onClick={() => setEditing('new')}>
            {kind === 'devices' ? t('outlets.addDevice') : t('outlets.addCashier')}
          </Button>
        ) : null
      }
    >
      {members.isError ? (
        <ErrorState error={members.error} onRetry={() => members.refetch()} />
      ) : members.isPending ? (
        <Loading />
      ) : items.length === 0 ? (
        <EmptyState
          icon="outlets"
          title={kind === 'devices' ? t('outlets.noDevices') : t('outlets.noCashiers')}
        />
      ) : (
        <DataTable columns={columns} rows={items} rowKey={(m) => m.id} />
      )}
      {editing ? (
        <MemberDialog
          kind={kind}
          member={editing === 'new' ? null : editing}
          outlets={itemsOf(outlets.data)}
          onClose={() => setEditing(null)}
        />
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title={t('outlets.deleteTitle')}
          text={t('outlets.deleteText', { name: deleting.name })}
          confirmLabel={t('common.delete')}
          busy={remove.isPending}
          onConfirm={() => remove.mutate(deleting.id)}
          onCancel={() => setDeleting(null)}
        />
      ) : null}
    </Card>
  );
}

function MemberDialog({
  kind,
  member,
  outlets,
  onClose,
}: {
  kind: 'devices' | 'cashiers';
  member: Member | null;
  outlets: Outlet[];
  onClose: () => void;
}) {
  const { t } = useI18n();
  const [name, setName] = useState(member?.name ?? '');
  const [outletId, setOutletId] = useState(member?.outletId ?? '');
  const body = { name: name.trim(), outletId: outletId || null };
  const save = useAction(
    () => (member ? portalApi.patch(`/${kind}/${member.id}`, body) : portalApi.post(`/${kind}`, body)),
    { invalidate: [[kind]], success: t('common.saved'), onSuccess: onClose },
  );
  const title = kind === 'devices' ? t('outlets.addDevice') : t('outlets.addCashier');
  return (
    <Modal
      title={member ? t('common.edit') : title}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t('common.cancel')}</Button>
          <Button
            variant="primary"
            busy={save.isPending}
            disabled={!name.trim()}
            onClick={() => save.mutate()}
          >
            {t('common.save')}
          </Button>
        </>
      }
    >
      <div className="stack">
        <TextField label={t('common.name')} value={name} onChange={setName} required autoFocus />
        <SelectField
          label={t('outlets.outlet')}
          value={outletId}
          onChange={setOutletId}
          options={[
            { value: '', label: t('outlets.anyOutlet') },
            ...outlets.map((o) => ({ value: o.id, label: o.name })),
          ]}
        />
      </div>
    </Modal>
  );
}
