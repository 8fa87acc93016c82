import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { useAction } from '../lib/query';
import {
  Badge,
  Callout,
  Card,
  ConfirmDialog,
  ErrorState,
  Loading,
  PageHeader,
  Switch,
} from '../ui/components';
import { adminApi, type Switches, type SwitchState } from './api';

type Name = 'maintenance' | 'readOnly';

/** Maintenance and read-only modes, switched at run time on every replica. */
export function SwitchesPage() {
  const { t } = useI18n();
  const switches = useQuery({ queryKey: ['switches'], queryFn: () => adminApi.get<Switches>('/switches') });
  const [pending, setPending] = useState<{ name: Name; enabled: boolean } | null>(null);
  const change = useAction(
    (input: { name: Name; enabled: boolean }) =>
      adminApi.put<Switches>('/switches', { [input.name]: input.enabled }),
    { invalidate: [['switches'], ['system']], success: t('common.saved'), onSuccess: () => setPending(null) },
  );
  const row = (name: Name, state: SwitchState) => (
    <Card
      key={name}
      title={t(`switches.${name}`)}
      subtitle={t(`switches.${name}Hint`)}
      actions={
        state.enabled ? (
          <Badge tone="danger">{t('switches.on')}</Badge>
        ) : (
          <Badge tone="success">{t('switches.off')}</Badge>
        )
      }
    >
      <div className="stack">
        {state.forcedByEnv ? (
          <Callout tone="warning">
            {t('switches.forcedByEnv', {
              name: name === 'maintenance' ? 'MAINTENANCE_MODE' : 'READ_ONLY_MODE',
            })}
          </Callout>
        ) : null}
        <Switch
          checked={state.runtime}
          disabled={state.forcedByEnv || change.isPending}
          onChange={(enabled) => setPending({ name, enabled })}
          label={state.runtime ? t('switches.runtimeOn') : t('switches.runtimeOff')}
        />
      </div>
    </Card>
  );
  return (
    <div className="stack-lg">
      <PageHeader title={t('switches.title')} subtitle={t('switches.subtitle')} />
      {switches.isError ? (
        <Card>
          <ErrorState error={switches.error} onRetry={() => switches.refetch()} />
        </Card>
      ) : !switches.data ? (
        <Card>
          <Loading />
        </Card>
      ) : (
        <div className="grid-2" style={{ alignItems: 'start' }}>
          {row('maintenance', switches.data.maintenance)}
          {row('readOnly', switches.data.readOnly)}
        </div>
      )}
      {pending ? (
        <ConfirmDialog
          title={pending.enabled ? t(`switches.${pending.name}`) : t('switches.turnOffTitle')}
          text={pending.enabled ? t(`switches.${pending.name}Confirm`) : t('switches.turnOffText')}
          confirmLabel={pending.enabled ? t('switches.turnOn') : t('switches.turnOff')}
          busy={change.isPending}
          onConfirm={() => change.mutate(pending)}
          onCancel={() => setPending(null)}
        />
      ) : null}
    </div>
  );
}
