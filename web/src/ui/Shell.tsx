import { type ReactNode, useEffect, useState } from 'react';
import { NavLink, useLocation } from 'react-router';
import { useI18n } from '../i18n';
import { LanguageSwitch } from './components';
import { Icon, type IconName } from './icons';

/** A navigation entry. */
export interface NavItem {
  to: string;
  label: string;
  icon: IconName;
  /** Match only the exact path (for index routes). */
  end?: boolean;
}

/** A titled group of navigation entries. */
export interface NavGroup {
  label?: string;
  items: NavItem[];
}

/**
 * The signed-in layout: a dark sidebar on desktop; on phones a top bar whose menu button opens the
 * sidebar as a drawer (closed again on navigation, on the backdrop and with Escape).
 */
export function Shell({
  product,
  subtitle,
  groups,
  userLabel,
  userHint,
  onLogout,
  banner,
  children,
}: {
  product: string;
  subtitle: string;
  groups: NavGroup[];
  userLabel: string;
  userHint?: string;
  onLogout: () => void;
  banner?: ReactNode;
  children: ReactNode;
}) {
  const { t } = useI18n();
  const [isOpen, setOpen] = useState(false);
  const location = useLocation();
  // biome-ignore lint/correctness/useExhaustiveDependencies: close the drawer whenever the route changes
  useEffect(() => setOpen(false), [location.pathname]);
  useEffect(() => {
    if (!isOpen) return;
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') setOpen(false);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [isOpen]);
  const current = groups.flatMap((g) => g.items).find((item) => location.pathname.startsWith(item.to));
  return (
    <div className="shell" data-drawer={isOpen ? 'open' : 'closed'}>
      <aside className="sidebar" id="sidebar" aria-label={t('common.navigation')}>
        <div className="brand">
          <div className="brand-mark">
            <Icon name="programme" size={18} />
          </div>
          <div style={{ minWidth: 0 }}>
            <div className="brand-name">{product}</div>
            <div className="brand-sub">{subtitle}</div>
          </div>
        </div>
        <nav className="nav">
          {groups.map((group) => (
            <div key={group.label ?? 'main'} className="nav">
              {group.label ? <div className="nav-group">{group.label}</div> : null}
              {group.items.map((item) => (
                <NavLink key={item.to} to={item.to} end={item.end}>
                  <Icon name={item.icon} />
                  {item.label}
                </NavLink>
              ))}
            </div>
          ))}
        </nav>
        <div className="sidebar-footer">
          <div>
            <div className="user-email">{userLabel}</div>
            {userHint ? <div style={{ color: '#94a3b8', fontSize: 12 }}>{userHint}</div> : null}
          </div>
          <div className="row-between">
            <LanguageSwitch />
            <button type="button" className="btn btn-sm" onClick={onLogout}>
              <Icon name="logout" size={16} />
              {t('auth.logout')}
            </button>
          </div>
        </div>
      </aside>
      <button
        type="button"
        className="drawer-backdrop"
        aria-label={t('common.closeMenu')}
        tabIndex={-1}
        onClick={() => setOpen(false)}
      />
      <div className="main">
        <header className="topbar">
          <button
            type="button"
            className="btn btn-ghost btn-sm"
            aria-label={t('common.openMenu')}
            aria-controls="sidebar"
            aria-expanded={isOpen}
            onClick={() => setOpen(true)}
          >
            <Icon name="menu" size={20} />
          </button>
          <span className="topbar-title">{current?.label ?? product}</span>
        </header>
        {banner}
        <main className="content">{children}</main>
      </div>
    </div>
  );
}
