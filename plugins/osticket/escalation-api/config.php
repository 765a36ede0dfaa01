<?php
/*
 * The plugin instance's settings (Admin Panel -> Manage -> Plugins ->
 * Escalation API -> Instances).
 */
require_once INCLUDE_DIR . 'class.plugin.php';
require_once INCLUDE_DIR . 'class.api.php';

class EscalationApiConfig extends PluginConfig {
    function getOptions() {
        return array(
            'bot_agent' => new TextboxField(array(
                'label' => 'Bot agent',
                'required' => true,
                'hint' => 'Username of the active agent the escalation worker acts as: '
                    . 'notes, assignments, field and status changes are made and logged '
                    . 'as this agent, within its roles and departments.',
                'configuration' => array('size' => 40, 'length' => 64),
            )),
            'api_key' => new TextboxField(array(
                'label' => 'Worker API key',
                'required' => true,
                'hint' => 'The API key the escalation worker uses (Admin Panel -> Manage -> '
                    . 'API Keys). Only this key may call /api/escalation/...: every other '
                    . 'key, however active, is refused.',
                'configuration' => array('size' => 40, 'length' => 64),
            )),
        );
    }

    function pre_save(&$config, &$errors) {
        $name = trim((string) $config['bot_agent']);
        $staff = $name ? Staff::lookup(array('username' => $name)) : null;
        if (!$staff || !$staff->isActive())
            $errors['err'] = sprintf('Bot agent: no active agent with username "%s"',
                Format::htmlchars($name));
        $key = trim((string) $config['api_key']);
        if (!$key || !API::getIdByKey($key))
            $errors['err'] = 'Worker API key: no such API key (Admin Panel -> Manage -> API Keys)';
        return !$errors;
    }
}
