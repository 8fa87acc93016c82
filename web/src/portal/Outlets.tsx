import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import { useResource } from '../lib/resource';
import { Card, PageHeader, SelectField, TextField } from '../ui/components';
import type { Column } from '../ui/DataTable';
import { IdChip } from '../ui/IdChip';
import { AddButton, editColumn, FormDialog, ResourceConfirm, ResourceTable } from '../ui/resource';
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
  const outlets = useResource<Outlet>({
    queryKey: ['outlets'],
    queryFn: () => portalApi.get<{ items: Outlet[] }>('/outlets'),
    confirm: (o) => portalApi.delete(`/outlets/${o.id}`),
    confirmed: t('outlets.deleted'),
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
  if (canWrite) columns.push(editColumn(outlets));
  return (
    <Card
      padded={false}
      title={t('outlets.tabOutlets')}
      actions={
        <AddButton
          canWrite={canWrite}
          size="sm"
          label={t('outlets.add')}
          onClick={() => outlets.edit('new')}
        />
      }
    >
      <ResourceTable
        resource={outlets}
        columns={columns}
        empty={{ icon: 'outlets', title: t('outlets.empty'), hint: t('outlets.emptyHint') }}
      />
      {outlets.editing ? <OutletDialog outlet={outlets.edited} onClose={outlets.closeEdit} /> : null}
      <ResourceConfirm
        resource={outlets}
        title={t('outlets.deleteTitle')}
        text={(o) => t('outlets.deleteText', { name: o.name })}
      />
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
    <FormDialog
      title={outlet ? t('outlets.editTitle') : t('outlets.add')}
      onClose={onClose}
      busy={save.isPending}
      canSubmit={Boolean(name.trim())}
      onSubmit={() => save.mutate()}
    >
      <TextField label={t('common.name')} value={name} onChange={setName} required autoFocus />
      <TextField label={t('outlets.address')} value={address} onChange={setAddress} />
    </FormDialog>
  );
}

type Member = Device | Cashier;

function MemberList({ kind }: { kind: 'devices' | 'cashiers' }) {
  const i18n = useI18n();
  const { t } = i18n;
  const canWrite = useCan('outlets:write');
  const members = useResource<Member>({
    queryKey: [kind],
    queryFn: () => portalApi.get<{ items: Member[] }>(`/${kind}`),
    confirm: (m) => portalApi.delete(`/${kind}/${m.id}`),
    confirmed: t('outlets.deleted'),
  });
  const outlets = useQuery({
    queryKey: ['outlets'],
    queryFn: () => portalApi.get<{ items: Outlet[] }>('/outlets'),
  });
  const outletName = (id: string | null) => itemsOf(outlets.data).find((o) => o.id === id)?.name;
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
  if (canWrite) columns.push(editColumn(members));
  const isDevices = kind === 'devices';
  return (
    <Card
      padded={false}
      title={isDevices ? t('outlets.tabDevices') : t('outlets.tabCashiers')}
      subtitle={isDevices ? t('outlets.devicesHint') : t('outlets.cashiersHint')}
      actions={
        <AddButton
          canWrite={canWrite}
          size="sm"
          label={isDevices ? t('outlets.addDevice') : t('outlets.addCashier')}
          onClick={() => members.edit('new')}
        />
      }
    >
      <ResourceTable
        resource={members}
        columns={columns}
        empty={{ icon: 'outlets', title: isDevices ? t('outlets.noDevices') : t('outlets.noCashiers') }}
      />
      {members.editing ? (
        <MemberDialog
          kind={kind}
          member={members.edited}
          outlets={itemsOf(outlets.data)}
          onClose={members.closeEdit}
        />
      ) : null}
      <ResourceConfirm
        resource={members}
        title={t('outlets.deleteTitle')}
        text={(m) => t('outlets.deleteText', { name: m.name })}
      />
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
    <FormDialog
      title={member ? t('common.edit') : title}
      onClose={onClose}
      busy={save.isPending}
      canSubmit={Boolean(name.trim())}
      onSubmit={() => save.mutate()}
    >
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
    </FormDialog>
  );
}
