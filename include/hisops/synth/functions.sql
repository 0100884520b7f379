-- 确定性伪随机辅助函数 Deterministic pseudo-random helpers for the generator.
--
-- Created in pg_temp by every generator session (they vanish with the session, nothing is left
-- in the target database). Rendered by generate.py: the seed and n_<table> row-count placeholders become literals.
--
-- Every value is a pure function of (seed, stream, row id): hashint8extended is the hash
-- PostgreSQL itself uses for hash partitioning, so it is stable across platforms and releases,
-- and rows come out identical whatever the chunking, order or number of parallel sessions.
-- All helpers are single-expression SQL functions, which the planner inlines; a parameter
-- used more than once must be fed a plain column (data.sql uses OFFSET 0 subqueries for that),
-- otherwise PostgreSQL refuses to inline and the generator becomes ~20x slower.
--
-- Data window: 2023-01-01 .. 2025-12-31 (1096 days); "now" for open admissions is 2026-01-01.

-- --- primitives -----------------------------------------------------------------------------
CREATE FUNCTION pg_temp.h(stream integer, id bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashint8extended(id, (:seed)::bigint * 1000003 + stream) & 9223372036854775807 $$;

-- uniform in [0, 1) with 31 bits of resolution
CREATE FUNCTION pg_temp.u(stream integer, id bigint) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (pg_temp.h(stream, id) % 2147483648)::double precision / 2147483648.0 $$;

-- uniform integer in 1..n
CREATE FUNCTION pg_temp.ri(stream integer, id bigint, n bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 1 + pg_temp.h(stream, id) % n $$;

-- child row -> parent row: the first n children cover every parent once, the rest are random
CREATE FUNCTION pg_temp.cover(id bigint, n bigint, stream integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN id <= n THEN id ELSE pg_temp.ri(stream, id, n) END $$;

CREATE FUNCTION pg_temp.pick(arr text[], stream integer, id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT arr[1 + (pg_temp.h(stream, id) % cardinality(arr))::integer] $$;

-- k-th (k = 0, 1, ...) of several distinct picks from one list: a random start and a random
-- stride; distinct for k < cardinality(arr) when the length is prime, which is why the
-- fragment lists below that are used with pick_k have 5, 7, 11 or 13 entries
CREATE FUNCTION pg_temp.pick_k(arr text[], stream integer, id bigint, k integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT arr[1 + ((pg_temp.h(stream, id) % cardinality(arr)
                     + k * (1 + pg_temp.h(stream + 1, id) % (cardinality(arr) - 1))) % cardinality(arr))::integer] $$;

-- like pick, but earlier elements are more likely (density ~ 1/sqrt)
CREATE FUNCTION pg_temp.skew(arr text[], stream integer, id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT arr[1 + floor(pg_temp.u(stream, id) ^ 2 * cardinality(arr))::integer] $$;

-- --- word lists -------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.surnames() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{王,李,张,刘,陈,杨,黄,赵,吴,周,徐,孙,马,朱,胡,郭,何,高,林,罗,郑,梁,谢,宋,唐,许,韩,冯,邓,曹,彭,曾,肖,田,董,袁,
  潘,于,蒋,蔡,余,杜,叶,程,苏,魏,吕,丁,任,沈,姚,卢,姜,崔,钟,谭,陆,汪,范,金,石,廖,贾,夏,韦,付,方,白,邹,孟,
  熊,秦,邱,江,尹,薛,闫,段,雷,侯,龙,史,陶,黎,贺,顾,毛,郝,龚,邵,万,钱,严,覃,武,戴,莫,孔,向,汤,欧阳,司马,诸葛}'::text[] $$;

CREATE FUNCTION pg_temp.male_chars() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{伟,强,磊,军,洋,勇,杰,涛,明,超,刚,平,辉,鹏,华,飞,鑫,波,斌,宇,浩,凯,健,俊,帆,帅,旭,宁,龙,林,峰,建,国,志,
  文,博,晨,轩,昊,然,泽,宏,振,海,亮,东,成,德,立,新,庆,毅,松,山,彬,俊,锋,荣,瑞,天}'::text[] $$;

CREATE FUNCTION pg_temp.female_chars() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{芳,娜,敏,静,秀,丽,艳,娟,霞,燕,玲,桂,英,梅,琳,雪,婷,倩,洁,颖,欣,怡,雯,佳,慧,晶,莉,萍,红,兰,凤,月,琴,蕾,
  薇,悦,蓉,晓,瑶,璐,思,梦,诗,雨,嘉,可,宁,欢,丹,露,云,彤,菲,妍,珊,君,秋,香,春,玉}'::text[] $$;

CREATE FUNCTION pg_temp.durations() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{1天,2天,3天,5天,1周,2周,半月,1月,3月,半年,1年,3年,10余年}'::text[] $$;

CREATE FUNCTION pg_temp.hpi() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{无明显诱因出现上述症状，呈持续性，休息后可稍缓解,
  受凉后出现上述症状，伴畏寒、乏力，自服药物效果不佳,
  症状呈阵发性加重，夜间明显，无放射痛,
  曾于当地诊所就诊，予对症治疗后症状无明显好转,
  伴食欲下降、睡眠欠佳，大小便基本正常,
  无胸痛、咯血，无恶心、呕吐，无腹痛、腹泻,
  症状逐渐加重，影响日常生活，遂来我院就诊,
  起病以来精神、食欲一般，体重无明显变化,
  伴活动后气促，可平卧，无夜间阵发性呼吸困难,
  近一周症状较前加重，门诊拟诊后收入我科进一步诊治,
  劳累后症状明显，经休息不能完全缓解,
  伴轻度头晕，无视物旋转，无肢体活动障碍,
  发病后无发热，无咳嗽、咳痰}'::text[] $$;

CREATE FUNCTION pg_temp.history() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{既往体健，否认高血压、糖尿病、冠心病病史,
  有高血压病史10余年，规律服用降压药物，血压控制尚可,
  有2型糖尿病病史5年，口服二甲双胍治疗，血糖控制欠佳,
  否认肝炎、结核等传染病史，否认手术、外伤史,
  10年前行阑尾切除术，术后恢复良好,
  否认药物及食物过敏史，预防接种史随当地进行,
  有青霉素过敏史，否认输血史,
  有慢性支气管炎病史多年，冬春季节易发作,
  有冠心病病史3年，长期服用阿司匹林,
  否认高血压、糖尿病病史，有痛风病史,
  5年前因外伤行骨折内固定术}'::text[] $$;

CREATE FUNCTION pg_temp.personal() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{生于原籍，久居本地，无疫区居住史,
  吸烟20年，每日约10支，偶有饮酒,
  无烟酒嗜好，无毒物及放射性物质接触史,
  已婚已育，配偶及子女体健,
  家族中无类似疾病患者，否认家族遗传病史}'::text[] $$;

CREATE FUNCTION pg_temp.exam() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{神志清楚，精神可，查体合作,
  全身皮肤黏膜无黄染，浅表淋巴结未触及肿大,
  双肺呼吸音清，未闻及干湿性啰音,
  双肺呼吸音粗，双下肺可闻及少许湿啰音,
  心律齐，各瓣膜听诊区未闻及病理性杂音,
  腹平软，无压痛及反跳痛，肝脾肋下未触及,
  右下腹压痛阳性，无反跳痛,
  双下肢无水肿，生理反射存在，病理反射未引出,
  双下肢轻度凹陷性水肿,
  脊柱四肢无畸形，活动自如,
  颈软，无抵抗，甲状腺未触及肿大}'::text[] $$;

CREATE FUNCTION pg_temp.aux() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{血常规示白细胞计数升高，中性粒细胞比例增高,
  胸部CT示双肺纹理增多，右下肺少许炎症,
  心电图示窦性心律，ST段轻度压低,
  腹部彩超未见明显异常,
  头颅MRI未见明显急性病变,
  空腹血糖偏高，糖化血红蛋白7.8%,
  肝肾功能、电解质基本正常,
  尿常规示白细胞阳性，尿蛋白弱阳性,
  X线片示骨皮质连续性中断，断端轻度移位,
  血脂示低密度脂蛋白胆固醇升高,
  D-二聚体轻度升高}'::text[] $$;

CREATE FUNCTION pg_temp.plan() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{完善血常规、生化、凝血功能等相关检查,
  予抗感染、止咳化痰等对症支持治疗,
  监测生命体征，记录24小时出入量,
  予控制血压、血糖，改善循环治疗,
  低盐低脂饮食，注意休息,
  请相关科室会诊，协助诊治,
  择期手术治疗，术前完善相关准备,
  向患者及家属交代病情，签署知情同意书,
  密切观察病情变化，及时调整治疗方案,
  予营养支持及护胃治疗,
  加强健康宣教，指导功能锻炼}'::text[] $$;

CREATE FUNCTION pg_temp.progress() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{患者今日一般情况可，诉症状较前减轻,
  夜间睡眠可，饮食及二便正常,
  查体生命体征平稳，心肺腹查体无特殊,
  复查血常规示炎症指标较前下降,
  继续目前治疗方案，密切观察病情,
  上级医师查房后指示：继续当前治疗，注意复查相关指标,
  患者诉仍有轻度不适，予调整用药,
  体温已恢复正常，咳嗽较前明显好转,
  今日无发热，精神、食欲较前好转,
  复查肝肾功能未见明显异常,
  伤口敷料干燥，愈合良好}'::text[] $$;

CREATE FUNCTION pg_temp.surgery() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{患者取仰卧位，麻醉成功后常规消毒铺巾,
  逐层切开皮肤及皮下组织，显露术野,
  探查见病灶与周围组织轻度粘连，予仔细分离,
  彻底止血，清点器械纱布无误后逐层关闭切口,
  术中患者生命体征平稳，未输血,
  切除标本送病理检查,
  手术顺利，术后安返病房}'::text[] $$;

CREATE FUNCTION pg_temp.advice() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT
'{注意休息，避免劳累，按时服药,
  出院后1周门诊复查，不适随诊,
  定期监测血压、血糖，低盐低脂饮食,
  戒烟限酒，适当运动,
  遵医嘱服药，勿自行停药}'::text[] $$;

-- --- people -----------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.person_name(stream integer, id bigint, female boolean) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_temp.skew(pg_temp.surnames(), stream, id)
        || pg_temp.pick(CASE WHEN female THEN pg_temp.female_chars() ELSE pg_temp.male_chars() END, stream + 1, id)
        || CASE WHEN pg_temp.u(stream + 2, id) < 0.75
                THEN pg_temp.pick(CASE WHEN female THEN pg_temp.female_chars() ELSE pg_temp.male_chars() END,
                                  stream + 3, id)
                ELSE '' END $$;

CREATE FUNCTION pg_temp.pat_female(pid bigint) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_temp.h(100, pid) % 2 = 1 $$;

-- born before the data window (so before any visit), up to 95 years old, older people more frequent
CREATE FUNCTION pg_temp.pat_birth(pid bigint) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT date '2022-12-31' - floor(pg_temp.u(101, pid) ^ 0.75 * 34675)::integer $$;

CREATE FUNCTION pg_temp.pat_name(pid bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_temp.person_name(102, pid, pg_temp.pat_female(pid)) $$;

-- GB 11643 check character of the first 17 digits
CREATE FUNCTION pg_temp.id_check(b text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT substr('10X98765432', 1 + ((
          substr(b, 1, 1)::integer * 7 + substr(b, 2, 1)::integer * 9 + substr(b, 3, 1)::integer * 10
        + substr(b, 4, 1)::integer * 5 + substr(b, 5, 1)::integer * 8 + substr(b, 6, 1)::integer * 4
        + substr(b, 7, 1)::integer * 2 + substr(b, 8, 1)::integer * 1 + substr(b, 9, 1)::integer * 6
        + substr(b, 10, 1)::integer * 3 + substr(b, 11, 1)::integer * 7 + substr(b, 12, 1)::integer * 9
        + substr(b, 13, 1)::integer * 10 + substr(b, 14, 1)::integer * 5 + substr(b, 15, 1)::integer * 8
        + substr(b, 16, 1)::integer * 4 + substr(b, 17, 1)::integer * 2) % 11), 1) $$;

CREATE FUNCTION pg_temp.doctor_dept(doctor bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT ((doctor - 1) % :n_department + 1)::integer $$;

-- a diagnosis that belongs to the department (see dictionaries.sql)
CREATE FUNCTION pg_temp.dept_dx(dept integer, stream integer, id bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (dept + :n_department * (pg_temp.h(stream, id) % :dx_per_dept))::integer $$;

-- --- outpatient visits: ids are chronological ------------------------------------------------
CREATE FUNCTION pg_temp.visit_patient(v bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_temp.ri(140, v, :n_patient) $$;

CREATE FUNCTION pg_temp.visit_doctor(v bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_temp.ri(141, v, :n_doctor)::integer $$;

CREATE FUNCTION pg_temp.visit_time(v bigint) RETURNS timestamp
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT timestamp '2023-01-01 08:00'
         + make_interval(days => floor((v - 1 + pg_temp.u(142, v)) * 1096.0 / :n_outpatient_visit)::integer,
                         secs => floor(pg_temp.u(143, v) * 32400)) $$;

-- --- admissions: ids are chronological ----------------------------------------------------------
CREATE FUNCTION pg_temp.adm_patient(a bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_temp.ri(190, a, :n_patient) $$;

CREATE FUNCTION pg_temp.adm_doctor(a bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT pg_temp.ri(191, a, :n_doctor)::integer $$;

CREATE FUNCTION pg_temp.adm_dx(a bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT pg_temp.dept_dx(pg_temp.doctor_dept(pg_temp.adm_doctor(a)), 196, a) $$;

CREATE FUNCTION pg_temp.adm_time(a bigint) RETURNS timestamp
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT timestamp '2023-01-01'
         + make_interval(days => floor((a - 1 + pg_temp.u(192, a)) * 1096.0 / :n_admission)::integer,
                         secs => floor(pg_temp.u(193, a) * 86400)) $$;

-- planned end of stay: length of stay ~ 1 + exponential(mean 7 days), at most 60 days
CREATE FUNCTION pg_temp.adm_end(a bigint) RETURNS timestamp
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_temp.adm_time(a)
         + make_interval(days => least(60, 1 + floor(-ln(1 - pg_temp.u(194, a)) * 7))::integer,
                         secs => floor(pg_temp.u(195, a) * 21600)) $$;

-- NULL while the patient is still in hospital on 2026-01-01
CREATE FUNCTION pg_temp.adm_discharge(a bigint) RETURNS timestamp
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_temp.adm_end(a) < timestamp '2026-01-01' THEN pg_temp.adm_end(a) END $$;

-- last moment of the stay that has happened
CREATE FUNCTION pg_temp.adm_last(a bigint) RETURNS timestamp
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT least(pg_temp.adm_end(a), timestamp '2026-01-01') $$;

-- --- prescriptions ----------------------------------------------------------------------------------
-- 1 西药, 2 中成药, 3 中草药
CREATE FUNCTION pg_temp.rx_kind(p bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_temp.u(161, p) < 0.72 THEN 1 WHEN pg_temp.u(161, p) < 0.9 THEN 2 ELSE 3 END $$;

CREATE FUNCTION pg_temp.rx_drug(kind integer, stream integer, id bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE kind WHEN 1 THEN :drug_lo_1 + pg_temp.h(stream, id) % :drug_n_1
                      WHEN 2 THEN :drug_lo_2 + pg_temp.h(stream, id) % :drug_n_2
                      ELSE :drug_lo_3 + pg_temp.h(stream, id) % :drug_n_3 END)::integer $$;
