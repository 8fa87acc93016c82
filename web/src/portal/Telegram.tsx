import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { formatMoneyInput, parseMoney } from '../lib/money';
import { useAction } from '../lib/query';
import { useSession } from '../lib/useSession';
import {
  Badge,
  Button,
  Callout,
  Card,
  ErrorState,
  Loading,
  PageHeader,
  SecretBox,
  TextField,
} from '../ui/components';
import { QrImage } from '../ui/QrImage';
import { portalApi, type StaffChat, type TelegramState } from './api';

/** The customer bot (connected by token), staff links to the notify bot, notification settings. */
export function TelegramPage() {
  const { t } = useI18n();
  const state = useQuery({
    queryKey: ['telegram'],
    queryFn: () => portalApi.get<TelegramState>('/telegram'),
  });
  return (
    <div className="stack-lg">
      <PageHeader title={t('telegram.title')} subtitle={t('telegram.subtitle')} />
      {state.isError ? (
        <Card>
          <ErrorState error={state.error} onRetry={() => state.refetch()} />
        </Card>
      ) : !state.data ? (
        <Card>
          <Loading />
        </Card>
      ) : (
        <div className="grid-2" style={{ alignItems: 'start' }}>
          <CustomerBotCard state={state.data} />
          <div className="stack-lg">
            <StaffCard state={state.data} />
            <SettingsCard state={state.data} />
          </div>
        </div>
      )}
    </div>
  );
}

function CustomerBotCard({ state }: { state: TelegramState }) {
  const { t } = useI18n();
  const session = useSession(portalApi);
  const [token, setToken] = useState('');
  const connect = useAction(
    () => portalApi.post<{ username?: string }>('/telegram/bot', { token: token.trim() }),
    {
      invalidate: [['telegram']],
      success: t('telegram.connected'),
      onSuccess: () => setToken(''),
    },
  );
  const bot = state.bot?.connected ? state.bot : null;
  const miniAppUrl = `${window.location.origin}/miniapp?m=${session?.user.merchantId ?? ''}`;
  return (
    <Card
      title={t('telegram.customerBot')}
      subtitle={t('telegram.customerBotHint')}
      actions={
        bot ? (
          <Badge tone="success">{t('telegram.botConnected')}</Badge>
        ) : (
          <Badge>{t('telegram.botNotConnected')}</Badge>
        )
      }
    >
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          if (token.trim()) connect.mutate();
        }}
      >
        {bot?.username ? (
          <p>
            {t('telegram.botIs')}{' '}
            <a href={`https://t.me/${bot.username}`} target="_blank" rel="noreferrer">
              @{bot.username}
            </a>
          </p>
        ) : (
          <ol className="small muted" style={{ margin: 0, paddingLeft: 18 }}>
            <li>{t('telegram.step1')}</li>
            <li>{t('telegram.step2')}</li>
            <li>{t('telegram.step3')}</li>
          </ol>
        )}
        <TextField
          label={bot ? t('telegram.replaceToken') : t('telegram.token')}
          type="password"
          autoComplete="off"
          placeholder="123456789:AA…"
          value={token}
          onChange={setToken}
          hint={t('telegram.tokenHint')}
        />
        <div>
          <Button
            type="submit"
            variant="primary"
            busy={connect.isPending}
            disabled={!/^\d+:[\w-]+$/.test(token.trim())}
          >
            {bot ? t('telegram.reconnect') : t('telegram.connect')}
          </Button>
        </div>
        <div className="stack" style={{ gap: 6 }}>
          <span className="field-label">{t('telegram.miniAppUrl')}</span>
          <SecretBox value={miniAppUrl} label={t('telegram.miniAppUrl')} />
          <span className="field-hint">{t('telegram.miniAppHint')}</span>
        </div>
      </form>
    </Card>
  );
}

function chatLabel(chat: StaffChat): string {
  return chat.telegramUsername ? `@${chat.telegramUsername}` : chat.chatId;
}

function StaffCard({ state }: { state: TelegramState }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [link, setLink] = useState<{ token: string; expiresAt: string; deepLink: string | null } | null>(
    null,
  );
  const create = useAction(
    () =>
      portalApi.post<{ token: string; expiresAt: string; deepLink: string | null }>('/telegram/staff-links'),
    { invalidate: [['telegram']], onSuccess: setLink },
  );
  const unlink = useAction((id: string) => portalApi.delete(`/telegram/staff-chats/${id}`), {
    invalidate: [['telegram']],
    success: t('telegram.unlinked'),
  });
  return (
    <Card title={t('telegram.staff')} subtitle={t('telegram.staffHint')}>
      <div className="stack">
        {!state.notifyBot.configured ? (
          <Callout tone="warning">{t('telegram.notifyNotConfigured')}</Callout>
        ) : null}
        {state.notifyBot.username ? (
          <p className="small">
            {t('telegram.notifyBotIs')} <strong>@{state.notifyBot.username}</strong>
          </p>
        ) : null}
        {link ? (
          <div className="qr-box">
            {link.deepLink ? <QrImage text={link.deepLink} alt={t('telegram.qrAlt')} /> : null}
            <div className="stack grow" style={{ minWidth: 220 }}>
              {link.deepLink ? (
                <>
                  <a
                    href={link.deepLink}
                    target="_blank"
                    rel="noreferrer"
                    className="mono small"
                    style={{ overflowWrap: 'anywhere' }}
                    data-testid="staff-deep-link"
                  >
                    {link.deepLink}
                  </a>
                  <span className="small muted">{t('telegram.linkHint')}</span>
                </>
              ) : (
                <>
                  <span className="small">{t('telegram.sendCommand')}</span>
                  <SecretBox value={`/start ${link.token}`} label={t('telegram.command')} />
                </>
              )}
              <span className="small muted">
                {t('telegram.linkExpires', { date: i18n.dateTime(link.expiresAt) })}
              </span>
            </div>
          </div>
        ) : null}
        <div>
          <Button
            icon="qr"
            busy={create.isPending}
            disabled={!state.notifyBot.configured}
            onClick={() => create.mutate()}
          >
            {link ? t('telegram.newLink') : t('telegram.createLink')}
          </Button>
        </div>
        <div>
          <div className="field-label" style={{ marginBottom: 6 }}>
            {t('telegram.linkedChats')}
          </div>
          {state.staffChats.length === 0 ? (
            <p className="small muted">{t('telegram.noChats')}</p>
          ) : (
            <ul className="chat-list">
              {state.staffChats.map((chat) => (
                <li key={chat.id}>
                  <div>
                    <div>{chatLabel(chat)}</div>
                    <div className="small muted">
                      {t('telegram.linkedAt', { date: i18n.dateTime(chat.linkedAt) })}
                    </div>
                  </div>
                  <Button
                    size="sm"
                    variant="danger"
                    busy={unlink.isPending && unlink.variables === chat.id}
                    onClick={() => unlink.mutate(chat.id)}
                  >
                    {t('telegram.unlink')}
                  </Button>
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
    </Card>
  );
}

function SettingsCard({ state }: { state: TelegramState }) {
  const { t } = useI18n();
  const current = state.settings.largePurchaseMinor;
  const [threshold, setThreshold] = useState(current === null ? '' : formatMoneyInput(current));
  const parsed = threshold.trim() === '' ? null : parseMoney(threshold);
  const isValid = threshold.trim() === '' || parsed !== null;
  const save = useAction(() => portalApi.put('/telegram/settings', { largePurchaseMinor: parsed }), {
    invalidate: [['telegram']],
    success: t('common.saved'),
  });
  return (
    <Card title={t('telegram.settings')}>
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          if (isValid) save.mutate();
        }}
      >
        <TextField
          label={t('telegram.largePurchase')}
          suffix="₽"
          inputMode="decimal"
          value={threshold}
          onChange={setThreshold}
          hint={t('telegram.largePurchaseHint')}
          error={isValid ? undefined : t('programme.invalidMoney')}
        />
        <div>
          <Button type="submit" busy={save.isPending} disabled={!isValid}>
            {t('common.save')}
          </Button>
        </div>
      </form>
    </Card>
  );
}
